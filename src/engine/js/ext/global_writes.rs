//! Notes every change made to the global object's properties, so that a
//! frozen isolate's reset can tell a call that changed no global from one
//! that did without reading each of them back.
//!
//! The global object's template (in the startup snapshot, so every isolate
//! has it) carries interceptors for setting, defining and deleting named
//! and indexed properties. None of them takes the request: each notes it
//! in the isolate's [`GlobalWrites`] slot and lets V8 go on as if it were
//! not there. They have no getter and no query, so V8 skips them on every
//! read: a load of `Math` or `JSON` keeps its fast path (and optimized
//! code its constants). Only a write to the global object goes through the
//! interceptor, which is what is to be noted; it takes some 60 ns instead
//! of well under one, in every isolate (only frozen ones carry the slot).
//! A frozen runtime cannot have a template of its own: it would have to be
//! made without the startup snapshot, and V8 shares one read-only heap
//! among a process's isolates — the next isolate made from the snapshot
//! then failed to read it and the process aborted.
//!
//! V8 writes a global without asking interceptors in one case reachable
//! from user code: a `var` an indirect `eval` declares anew. Such a
//! property is enumerable, and the reset checks the enumerable keys for it
//! on every call (see `resetRealm` in `runtime_js/09_lockdown.js`).

use std::cell::Cell;

use deno_core::v8;
use deno_core::v8::MapFnTo;

/// The isolate slot an isolate that wants its global object's changes
/// noted carries. Isolates without one ignore them.
#[derive(Default)]
pub(crate) struct GlobalWrites(Cell<bool>);

impl GlobalWrites {
    /// Whether the global object changed since the last call of this, and
    /// forgets it.
    pub(crate) fn take(isolate: &v8::Isolate) -> bool {
        isolate
            .get_slot::<GlobalWrites>()
            .is_some_and(|writes| writes.0.replace(false))
    }
}

fn note(isolate: &v8::Isolate) {
    if let Some(writes) = isolate.get_slot::<GlobalWrites>() {
        writes.0.set(true);
    }
}

fn named_set<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    _key: v8::Local<'s, v8::Name>,
    _value: v8::Local<'s, v8::Value>,
    _args: v8::PropertyCallbackArguments<'s>,
    _rv: v8::ReturnValue<()>,
) -> v8::Intercepted {
    note(scope);
    v8::Intercepted::kNo
}

fn named_define<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    _key: v8::Local<'s, v8::Name>,
    _desc: &v8::PropertyDescriptor,
    _args: v8::PropertyCallbackArguments<'s>,
    _rv: v8::ReturnValue<()>,
) -> v8::Intercepted {
    note(scope);
    v8::Intercepted::kNo
}

fn named_delete<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    _key: v8::Local<'s, v8::Name>,
    _args: v8::PropertyCallbackArguments<'s>,
    _rv: v8::ReturnValue<v8::Boolean>,
) -> v8::Intercepted {
    note(scope);
    v8::Intercepted::kNo
}

fn indexed_set<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    _index: u32,
    _value: v8::Local<'s, v8::Value>,
    _args: v8::PropertyCallbackArguments<'s>,
    _rv: v8::ReturnValue<()>,
) -> v8::Intercepted {
    note(scope);
    v8::Intercepted::kNo
}

fn indexed_define<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    _index: u32,
    _desc: &v8::PropertyDescriptor,
    _args: v8::PropertyCallbackArguments<'s>,
    _rv: v8::ReturnValue<()>,
) -> v8::Intercepted {
    note(scope);
    v8::Intercepted::kNo
}

fn indexed_delete<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    _index: u32,
    _args: v8::PropertyCallbackArguments<'s>,
    _rv: v8::ReturnValue<v8::Boolean>,
) -> v8::Intercepted {
    note(scope);
    v8::Intercepted::kNo
}

/// Puts the interceptors on the global object's template.
pub(super) fn global_template<'s>(
    _scope: &mut v8::PinScope<'s, '_, ()>,
    template: v8::Local<'s, v8::ObjectTemplate>,
) -> v8::Local<'s, v8::ObjectTemplate> {
    template.set_named_property_handler(
        v8::NamedPropertyHandlerConfiguration::new()
            .setter(named_set)
            .definer(named_define)
            .deleter(named_delete),
    );
    template.set_indexed_property_handler(
        v8::IndexedPropertyHandlerConfiguration::new()
            .setter(indexed_set)
            .definer(indexed_define)
            .deleter(indexed_delete),
    );
    template
}

/// The interceptors, for the snapshot's external references (the same
/// list, in the same order, when it is made and when it is read).
pub(super) fn external_references() -> Vec<v8::ExternalReference> {
    vec![
        v8::ExternalReference {
            named_setter: named_set.map_fn_to(),
        },
        v8::ExternalReference {
            named_definer: named_define.map_fn_to(),
        },
        v8::ExternalReference {
            named_deleter: named_delete.map_fn_to(),
        },
        v8::ExternalReference {
            indexed_setter: indexed_set.map_fn_to(),
        },
        v8::ExternalReference {
            indexed_definer: indexed_define.map_fn_to(),
        },
        v8::ExternalReference {
            indexed_deleter: indexed_delete.map_fn_to(),
        },
    ]
}
