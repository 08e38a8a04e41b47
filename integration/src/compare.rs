//! Running one bundle on both runtimes and comparing the results.

use crate::bundle::Bundle;
use crate::output::Output;
use crate::runtime::Runtime;
use crate::unique_id;

/// Runs `bundle` in the foreground on the runtime under test and on the
/// reference runtime, one after the other; returns `(hull, runc)`.
pub fn run_on_both(bundle: &Bundle) -> (Output, Output) {
    let hull = Runtime::hull();
    let runc = Runtime::runc();
    let hull_output = hull.run(&unique_id("cmp-hull"), bundle);
    let runc_output = runc.run(&unique_id("cmp-runc"), bundle);
    (hull_output, runc_output)
}

/// Checks that both runs ended with the same exit code and printed the same
/// stdout; `what` names the check in the failure message.
#[track_caller]
pub fn assert_same_output(what: &str, hull: &Output, runc: &Output) {
    assert_eq!(
        hull.code, runc.code,
        "{what}: exit codes differ\n--- hull ---\n{hull}\n--- runc ---\n{runc}"
    );
    assert_eq!(
        hull.stdout, runc.stdout,
        "{what}: stdout differs\n--- hull ---\n{hull}\n--- runc ---\n{runc}"
    );
}

/// Runs `bundle` on both runtimes, checks that the results match and returns
/// the runtime under test's output.
#[track_caller]
pub fn run_and_compare(what: &str, bundle: &Bundle) -> Output {
    let (hull, runc) = run_on_both(bundle);
    assert_same_output(what, &hull, &runc);
    hull
}
