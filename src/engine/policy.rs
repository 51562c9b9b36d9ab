//! The isolation policy, as data: for each mode, where an execution runs,
//! which isolate it gets, and whether that isolate is kept for the next
//! call or retired. [`super::isolate_thread`] and [`super::Engine::run`]
//! follow this table and decide nothing of their own.

use super::types::{Isolation, Task};

/// Where an execution runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// In a worker process of its own.
    Process,
    /// On an isolate thread, in the isolate `Slot` names.
    Thread(Slot),
}

/// Which of an isolate thread's isolates an execution runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A fresh isolate, made ahead of time and retired after the call.
    Fresh,
    /// The warm isolate `"none"` calls share.
    Warm,
    /// The isolate `"frozen"` calls share: its built-ins frozen, a fresh
    /// module instance and global object per call.
    Frozen,
    /// A fresh Python interpreter (a fresh isolate with Pyodide loaded),
    /// made ahead of time and retired after the program.
    Python,
}

/// What becomes of a slot's isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotPolicy {
    /// Whether the isolate is made with frozen built-ins.
    pub frozen: bool,
    /// Whether the isolate is made with a Python interpreter loaded.
    pub python: bool,
    /// Whether it serves more than one call.
    pub kept: bool,
    /// A kept isolate is retired once it holds this many modules (a module
    /// map never shrinks)…
    pub max_modules: usize,
    /// …or once its heap and ArrayBuffers hold more than this share
    /// (1/n) of the memory limit.
    pub max_heap_share: usize,
}

/// A warm isolate is retired after this many distinct modules.
const WARM_MAX_MODULES: usize = 64;
/// A frozen isolate is retired after this many modules in its module map:
/// each call of a script that imports adds its instances; a script that
/// imports nothing adds itself once.
const FROZEN_MAX_MODULES: usize = 1000;
/// A kept isolate is retired past half the memory limit.
const KEPT_MAX_HEAP_SHARE: usize = 2;

impl Slot {
    /// The policy of this slot's isolate.
    pub(crate) const fn policy(self) -> SlotPolicy {
        match self {
            Slot::Fresh => SlotPolicy {
                frozen: false,
                python: false,
                kept: false,
                max_modules: 0,
                max_heap_share: 1,
            },
            Slot::Warm => SlotPolicy {
                frozen: false,
                python: false,
                kept: true,
                max_modules: WARM_MAX_MODULES,
                max_heap_share: KEPT_MAX_HEAP_SHARE,
            },
            Slot::Frozen => SlotPolicy {
                frozen: true,
                python: false,
                kept: true,
                max_modules: FROZEN_MAX_MODULES,
                max_heap_share: KEPT_MAX_HEAP_SHARE,
            },
            Slot::Python => SlotPolicy {
                frozen: false,
                python: true,
                kept: false,
                max_modules: 0,
                max_heap_share: 1,
            },
        }
    }
}

impl SlotPolicy {
    /// Whether an isolate that just served a call is kept for the next:
    /// only in a kept slot, only when the call left it reusable (not
    /// killed, nothing pending), and only while it is under its module and
    /// memory bounds.
    pub(crate) fn keeps(
        self,
        reusable: bool,
        modules: usize,
        memory_used: usize,
        memory_limit: usize,
    ) -> bool {
        self.kept
            && reusable
            && modules < self.max_modules
            && memory_used < memory_limit / self.max_heap_share
    }
}

/// Where `task` runs under `isolation`. Programs always start clean: a
/// program asked to run `"none"` or `"frozen"` gets a fresh isolate. A
/// Python program gets a fresh interpreter on an isolate thread in every
/// mode: its code runs inside WebAssembly inside the isolate, and a worker
/// process would have to start CPython anew for each run.
pub(crate) fn placement(isolation: Isolation, task: &Task) -> Placement {
    let program = matches!(task, Task::Program { .. });
    match isolation {
        _ if task.is_python() => Placement::Thread(Slot::Python),
        Isolation::Process => Placement::Process,
        Isolation::Isolate => Placement::Thread(Slot::Fresh),
        _ if program => Placement::Thread(Slot::Fresh),
        Isolation::None => Placement::Thread(Slot::Warm),
        Isolation::Frozen => Placement::Thread(Slot::Frozen),
    }
}

/// The modes a program may ask for: the others keep isolates between calls,
/// which programs never do.
pub const PROGRAM_MODES: [Isolation; 2] = [Isolation::Isolate, Isolation::Process];

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Task {
        Task::Call {
            script: "export const f = () => 1".into(),
            fn_name: "f".into(),
            payload: "null".into(),
        }
    }

    fn program() -> Task {
        Task::Program {
            path: "/w/a.ts".into(),
            source: None,
        }
    }

    fn python() -> Task {
        Task::Program {
            path: "/w/main.py".into(),
            source: None,
        }
    }

    #[test]
    fn each_mode_has_one_placement() {
        let table = [
            (Isolation::Isolate, call(), Placement::Thread(Slot::Fresh)),
            (Isolation::None, call(), Placement::Thread(Slot::Warm)),
            (Isolation::Frozen, call(), Placement::Thread(Slot::Frozen)),
            (Isolation::Process, call(), Placement::Process),
            (
                Isolation::Isolate,
                program(),
                Placement::Thread(Slot::Fresh),
            ),
            (Isolation::None, program(), Placement::Thread(Slot::Fresh)),
            (Isolation::Frozen, program(), Placement::Thread(Slot::Fresh)),
            (Isolation::Process, program(), Placement::Process),
            (Isolation::None, python(), Placement::Thread(Slot::Python)),
            (
                Isolation::Isolate,
                python(),
                Placement::Thread(Slot::Python),
            ),
            (
                Isolation::Process,
                python(),
                Placement::Thread(Slot::Python),
            ),
        ];
        for (isolation, task, want) in table {
            assert_eq!(placement(isolation, &task), want, "{isolation:?} {task:?}");
        }
    }

    #[test]
    fn only_kept_slots_keep_and_only_within_bounds() {
        let mib = 1 << 20;
        assert!(!Slot::Fresh.policy().keeps(true, 0, 0, 128 * mib));
        for slot in [Slot::Warm, Slot::Frozen] {
            let p = slot.policy();
            assert!(p.keeps(true, 1, mib, 128 * mib));
            assert!(!p.keeps(false, 1, mib, 128 * mib), "a killed isolate");
            assert!(!p.keeps(true, p.max_modules, mib, 128 * mib), "modules");
            assert!(!p.keeps(true, 1, 64 * mib, 128 * mib), "memory");
        }
        assert!(Slot::Frozen.policy().frozen && !Slot::Warm.policy().frozen);
    }
}
