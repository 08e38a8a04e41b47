//! Both sides of the seccomp listener hand-off. The process that installs a
//! filter with SCMP_ACT_NOTIFY rules (the init, or the process of `exec`)
//! sends the listener fd to the runtime with [`Message::SeccompListener`],
//! and waits for [`Message::SeccompListenerDone`]. In between, the runtime
//! sends the fd with the container process state to the seccomp agent.
//! Waiting keeps the process from exec'ing when the agent cannot be reached.

use std::os::fd::{AsFd, OwnedFd};

use crate::hooks::HookState;
use crate::seccomp::agent::{self, ContainerProcessState};
use crate::seccomp::{Filter, SeccompError};
use crate::sync::{Channel, Message};
use crate::{Error, Result};

/// Installs `filter` on the calling process. When the filter has a notify
/// listener, sends its fd to the runtime over `channel`, closes this copy,
/// and waits until the runtime has passed it to the agent.
pub(crate) fn install(filter: &Filter, channel: &Channel) -> Result<()> {
    let Some(listener) = filter.install()? else {
        return Ok(());
    };
    channel.send_with_fd(&Message::SeccompListener, listener.as_fd())?;
    // The fd in flight keeps the listener open until the runtime has it.
    drop(listener);
    channel.expect(&Message::SeccompListenerDone)
}

/// Passes the listener fd received with a [`Message::SeccompListener`] to
/// the agent at `filter`'s `listenerPath`, then sends
/// [`Message::SeccompListenerDone`] to the process over `channel`. `pid` is
/// the filtered process and `state` the container's state, both as the agent
/// receives them.
pub(crate) fn forward(
    channel: &Channel,
    filter: Option<&Filter>,
    listener: Option<OwnedFd>,
    pid: i32,
    state: &HookState,
) -> Result<()> {
    let Some(filter) = filter.filter(|f| f.needs_listener()) else {
        return Err(Error::Message(
            "unexpected seccomp listener from a process whose profile has no SCMP_ACT_NOTIFY rule"
                .into(),
        ));
    };
    let listener = listener.ok_or_else(|| {
        Error::Message("the seccomp listener message arrived without its fd".into())
    })?;
    let path = filter
        .listener_path()
        .ok_or(SeccompError::MissingListenerPath)?;
    let process_state = ContainerProcessState::new(filter, pid, state);
    agent::send_state(path, &process_state, listener.as_fd())?;
    drop(listener);
    channel.send(&Message::SeccompListenerDone)
}
