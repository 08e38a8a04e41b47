//! Syscall name tables per ABI and the lookups over them.

#[rustfmt::skip]
mod generic;
#[rustfmt::skip]
mod x86;

/// A syscall ABI the kernel can report in `seccomp_data`. Each has its own
/// syscall numbers, so a filter needs one dispatch section per ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abi {
    /// x86_64, the native ABI of x86_64 hosts.
    X86_64,
    /// i386, the 32-bit compat ABI of x86_64 hosts (`int 0x80`).
    X86,
    /// x32: the x86_64 arch value with `__X32_SYSCALL_BIT` set in the number.
    X32,
    /// aarch64, the native ABI of aarch64 hosts.
    Aarch64,
}

/// `__X32_SYSCALL_BIT` of `asm/unistd.h`: set in every x32 syscall number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// AUDIT_ARCH_* values of linux/audit.h: EM_* | __AUDIT_ARCH_64BIT (0x80000000)
// | __AUDIT_ARCH_LE (0x40000000).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

impl Abi {
    /// Returns the ABI of the host the runtime was built for, or `None` on a
    /// host without a syscall table here.
    pub fn native() -> Option<Abi> {
        if cfg!(target_arch = "x86_64") {
            Some(Abi::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Abi::Aarch64)
        } else {
            None
        }
    }

    /// Returns the `AUDIT_ARCH_*` value the kernel stores in
    /// `seccomp_data.arch`.
    pub fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::X86 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// Returns whether syscall arguments are 64 bits wide. On the 32-bit ABIs
    /// only the low 32 bits are compared, as libseccomp does (it treats x32 as
    /// 32-bit).
    pub fn has_64bit_args(self) -> bool {
        matches!(self, Abi::X86_64 | Abi::Aarch64)
    }

    fn table(self) -> &'static [(&'static str, i64)] {
        match self {
            Abi::X86_64 => x86::X86_64,
            Abi::X86 => x86::X86,
            Abi::X32 => x86::X32,
            Abi::Aarch64 => generic::AARCH64,
        }
    }

    /// Returns the number of syscall `name` in this ABI.
    pub fn syscall_number(self, name: &str) -> Option<i64> {
        let table = self.table();
        let index = table
            .binary_search_by(|(entry, _)| (*entry).cmp(name))
            .ok()?;
        Some(table[index].1)
    }
}

/// Returns the number of syscall `name` on the host's native ABI, or `None`
/// when the name is no syscall there.
pub fn syscall_number(name: &str) -> Option<i64> {
    Abi::native()?.syscall_number(name)
}

/// Returns whether `name` is a syscall on any Linux architecture, either on
/// one of the ABIs with a table here or in the list of names of other
/// architectures.
pub fn is_linux_syscall(name: &str) -> bool {
    let abis = [Abi::X86_64, Abi::X86, Abi::X32, Abi::Aarch64];
    abis.iter().any(|abi| abi.syscall_number(name).is_some())
        || generic::OTHER_ARCH_NAMES.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_sorted_by_name() {
        for abi in [Abi::X86_64, Abi::X86, Abi::X32, Abi::Aarch64] {
            let table = abi.table();
            assert!(
                table.windows(2).all(|pair| pair[0].0 < pair[1].0),
                "{abi:?} table is not sorted"
            );
        }
        let names = generic::OTHER_ARCH_NAMES;
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn numbers_match_libc() {
        #[cfg(target_arch = "x86_64")]
        let native = Abi::X86_64;
        #[cfg(target_arch = "aarch64")]
        let native = Abi::Aarch64;
        assert_eq!(native.syscall_number("read"), Some(libc::SYS_read));
        assert_eq!(native.syscall_number("getcwd"), Some(libc::SYS_getcwd));
        assert_eq!(native.syscall_number("mkdirat"), Some(libc::SYS_mkdirat));
        assert_eq!(native.syscall_number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(syscall_number("exit_group"), Some(libc::SYS_exit_group));
    }

    #[test]
    fn compat_numbers() {
        assert_eq!(Abi::X86.syscall_number("chown32"), Some(212));
        assert_eq!(Abi::X86.syscall_number("socketcall"), Some(102));
        assert_eq!(Abi::X32.syscall_number("read"), Some(0x4000_0000));
        assert_eq!(Abi::X32.syscall_number("rt_sigaction"), Some(0x4000_0200));
        assert_eq!(Abi::X86_64.syscall_number("chown32"), None);
    }

    #[test]
    fn known_names() {
        assert!(is_linux_syscall("read"));
        assert!(is_linux_syscall("_llseek"));
        assert!(is_linux_syscall("arm_fadvise64_64"));
        assert!(is_linux_syscall("mseal"));
        assert!(!is_linux_syscall("foo"));
        assert!(!is_linux_syscall(""));
    }
}
