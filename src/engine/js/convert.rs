//! Converts a call's result from V8 to JSON text: `JSON.stringify` semantics
//! plus data URIs for binary values and BigInts as decimal strings, with a
//! depth cap, a size cap and no host-side recursion deeper than the cap.

use deno_core::v8;

use super::ext::ResultText;
use crate::engine::mime;

/// Why a value could not be converted.
#[derive(Debug)]
pub(crate) enum ConvertError {
    /// JS threw while being read (a getter, `toJSON`, a proxy trap), or the
    /// value cannot be represented (a cycle): the pending exception is in the
    /// caller's `TryCatch`, or `synthetic` carries a `(name, message)`.
    Thrown { synthetic: Option<(String, String)> },
    /// Over `MAX_RESULT_BYTES` or deeper than `MAX_JSON_DEPTH`.
    OutputLimit(String),
}

/// Limits applied while converting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvertLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

struct Writer {
    out: Vec<u8>,
    limits: ConvertLimits,
    /// Identity hashes and handles of the containers on the current path.
    path: Vec<(i32, v8::Global<v8::Object>)>,
}

type Result<T> = std::result::Result<T, ConvertError>;

const THROWN: ConvertError = ConvertError::Thrown { synthetic: None };

/// JSON text for `value`. A top-level `undefined` (or function or symbol)
/// becomes `null`.
pub(crate) fn to_json<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    value: v8::Local<'s, v8::Value>,
    limits: ConvertLimits,
) -> Result<String> {
    let mut w = Writer {
        out: Vec::with_capacity(64),
        limits,
        path: Vec::new(),
    };
    let key: v8::Local<v8::Value> = v8::String::empty(scope).into();
    let value = prepare(scope, value, key)?;
    if is_skipped(value) {
        w.out.extend_from_slice(b"null");
    } else {
        write_value(scope, &mut w, value, 1)?;
    }
    // The writer only ever emits valid UTF-8 (serde_json escapes, ASCII
    // punctuation and V8's own number text).
    String::from_utf8(w.out).map_err(|_| ConvertError::OutputLimit("invalid text".into()))
}

/// JSON text for `value` by the glue's result hook (`resultHook`), which
/// applies the same rules as [`to_json`] in JS: one call into V8 instead of
/// several per value. The hook hands its text over in pieces (through
/// `op_isoexec_result_chunk`, into `pieces`) and answers the
/// last one, or a number saying why there is no text (1: too large, 2: too
/// deep, 3: a cycle); the text's size in bytes is checked here (the hook
/// counts UTF-16 units, never more than the bytes).
///
/// With `settle`, the hook then settles the runtime after a warm call (the
/// glue's `settle`) in the same entry into JS, and the second value says
/// whether the runtime was quiet afterwards (`None` without `settle`, or
/// when there is no text).
pub(crate) fn to_json_by_hook<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    hook: v8::Local<'s, v8::Function>,
    value: v8::Local<'s, v8::Value>,
    limits: ConvertLimits,
    settle: bool,
    pieces: &ResultText,
) -> Result<(String, Option<bool>)> {
    let receiver = v8::undefined(scope).into();
    let [max_bytes, max_depth, settle_after] = limit_arguments(scope, limits, settle);
    let answer = hook.call(
        scope,
        receiver,
        &[value, max_bytes, max_depth, settle_after],
    );
    hook_text(scope, answer, limits, settle, pieces)
}

/// The arguments both hooks end with: the most bytes and levels of nesting
/// the text may have, and whether to settle the runtime afterwards.
fn limit_arguments<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    limits: ConvertLimits,
    settle: bool,
) -> [v8::Local<'s, v8::Value>; 3] {
    [
        v8::Number::new(scope, limits.max_bytes as f64).into(),
        v8::Number::new(scope, limits.max_depth as f64).into(),
        v8::Boolean::new(scope, settle).into(),
    ]
}

/// What the glue's call hook answered (see [`call_by_hook`]).
pub(crate) enum Called<'s> {
    /// The result's JSON text, and whether the runtime was quiet after it
    /// (as [`to_json_by_hook`] answers).
    Json(String, Option<bool>),
    /// The function returned a promise: the caller settles it, then
    /// converts its value.
    Promise(v8::Local<'s, v8::Value>),
    /// The export of that name is no function (or there is none).
    NotAFunction,
}

/// Calls the export `name` of `namespace` with `payload` and converts what
/// it returns, by the glue's call hook (`callHook`): the export's look-up,
/// the call and the conversion in one entry into JS. The conversion and
/// `settle` are [`to_json_by_hook`]'s. `Thrown` without a `synthetic`
/// error means JS threw (the function itself or the result's own code) or
/// was ended: the exception is in the caller's `TryCatch`.
pub(crate) fn call_by_hook<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    hook: v8::Local<'s, v8::Function>,
    (namespace, name): (v8::Local<'s, v8::Object>, v8::Local<'s, v8::String>),
    payload: v8::Local<'s, v8::Value>,
    limits: ConvertLimits,
    settle: bool,
    pieces: &ResultText,
) -> Result<Called<'s>> {
    let receiver = v8::undefined(scope).into();
    let [max_bytes, max_depth, settle_after] = limit_arguments(scope, limits, settle);
    let answer = hook.call(
        scope,
        receiver,
        &[
            namespace.into(),
            name.into(),
            payload,
            max_bytes,
            max_depth,
            settle_after,
        ],
    );
    match answer {
        Some(answer) if answer.is_promise() => Ok(Called::Promise(answer)),
        Some(answer) if answer.is_number() && answer.uint32_value(scope) == Some(4) => {
            Ok(Called::NotAFunction)
        }
        answer => hook_text(scope, answer, limits, settle, pieces).map(|(t, q)| Called::Json(t, q)),
    }
}

/// The text a hook answered (its last piece, or a number saying why there
/// is none), after the pieces it handed over before.
fn hook_text<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    answer: Option<v8::Local<'s, v8::Value>>,
    limits: ConvertLimits,
    settle: bool,
    pieces: &ResultText,
) -> Result<(String, Option<bool>)> {
    // No pieces are left from an earlier conversion: each is emptied right
    // after the hook's call, however that call ended (only the glue reaches
    // the op that fills it).
    let mut text = pieces.take();
    let mut answer = answer.ok_or(THROWN)?;
    let mut quiet = settle.then_some(true);
    // Not quiet: the text comes wrapped in an array.
    if let Ok(wrapped) = v8::Local::<v8::Array>::try_from(answer) {
        answer = wrapped.get_index(scope, 0).ok_or(THROWN)?;
        quiet = Some(false);
    }
    if let Ok(last) = v8::Local::<v8::String>::try_from(answer) {
        let last = text_of(scope, last);
        if text.len() + last.len() > limits.max_bytes {
            return Err(too_large(limits));
        }
        if text.is_empty() {
            // All of it in one piece, the common case: the text as it came.
            return Ok((last, quiet));
        }
        text.extend_from_slice(last.as_bytes());
        // Pieces are whole `&str`s, cut between values.
        return String::from_utf8(text)
            .map(|text| (text, quiet))
            .map_err(|_| ConvertError::OutputLimit("invalid text".into()));
    }
    Err(match answer.uint32_value(scope) {
        Some(1) => too_large(limits),
        Some(2) => too_deep(limits),
        Some(3) => cycle(),
        _ => ConvertError::Thrown {
            synthetic: Some((
                "Error".into(),
                "the result could not be converted to JSON".into(),
            )),
        },
    })
}

/// `s` as Rust text. A one-byte string of ASCII only, what the result hook
/// answers for most results, is copied out as it is, from a string of many
/// parts too: asking V8 for a view of such a string would first join its
/// parts into a new string in the heap. Any other string goes through the
/// view (and its Latin-1 or UTF-16 text is converted).
fn text_of(scope: &v8::Isolate, s: v8::Local<v8::String>) -> String {
    if s.is_onebyte() {
        let length = s.length();
        let mut bytes = Vec::with_capacity(length);
        let room = &mut bytes.spare_capacity_mut()[..length];
        s.write_one_byte_uninit_v2(scope, 0, room, v8::WriteFlags::empty());
        // SAFETY: V8 wrote all `length` units of the string into `room`.
        unsafe { bytes.set_len(length) };
        if bytes.is_ascii()
            && let Ok(text) = String::from_utf8(bytes)
        {
            return text;
        }
    }
    s.to_rust_string_lossy(scope)
}

fn too_large(limits: ConvertLimits) -> ConvertError {
    ConvertError::OutputLimit(format!(
        "the result is larger than {} bytes",
        limits.max_bytes
    ))
}

fn too_deep(limits: ConvertLimits) -> ConvertError {
    ConvertError::OutputLimit(format!(
        "the result is nested deeper than {} levels",
        limits.max_depth
    ))
}

fn cycle() -> ConvertError {
    ConvertError::Thrown {
        synthetic: Some((
            "TypeError".into(),
            "Converting circular structure to JSON".into(),
        )),
    }
}

/// Values `JSON.stringify` leaves out of objects (and writes as `null` in arrays).
fn is_skipped(v: v8::Local<v8::Value>) -> bool {
    v.is_undefined() || v.is_function() || v.is_symbol()
}

/// Applies `toJSON` and unwraps boxed primitives, as `JSON.stringify` does
/// before it looks at a value.
fn prepare<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    value: v8::Local<'s, v8::Value>,
    key: v8::Local<'s, v8::Value>,
) -> Result<v8::Local<'s, v8::Value>> {
    if !value.is_object() || is_bytes(value) {
        return Ok(value);
    }
    let Ok(obj) = v8::Local::<v8::Object>::try_from(value) else {
        return Ok(value);
    };
    let name = v8::String::new(scope, "toJSON").ok_or(THROWN)?;
    let to_json = obj.get(scope, name.into()).ok_or(THROWN)?;
    let value = if let Ok(f) = v8::Local::<v8::Function>::try_from(to_json) {
        f.call(scope, value, &[key]).ok_or(THROWN)?
    } else {
        value
    };
    if value.is_number_object() {
        return Ok(value.to_number(scope).ok_or(THROWN)?.into());
    }
    if value.is_string_object() {
        return Ok(value.to_string(scope).ok_or(THROWN)?.into());
    }
    if value.is_boolean_object() {
        // The binding has no accessor for the wrapped flag; its text is it.
        let text = value.to_string(scope).ok_or(THROWN)?;
        let flag = text.to_rust_string_lossy(scope) == "true";
        return Ok(v8::Boolean::new(scope, flag).into());
    }
    if value.is_big_int_object() {
        // Written as its decimal string, like a BigInt primitive.
        return Ok(value.to_string(scope).ok_or(THROWN)?.into());
    }
    Ok(value)
}

fn is_bytes(v: v8::Local<v8::Value>) -> bool {
    v.is_array_buffer() || v.is_array_buffer_view() || v.is_shared_array_buffer()
}

fn write_value<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    w: &mut Writer,
    v: v8::Local<'s, v8::Value>,
    depth: usize,
) -> Result<()> {
    if v.is_null() {
        w.out.extend_from_slice(b"null");
    } else if v.is_true() {
        w.out.extend_from_slice(b"true");
    } else if v.is_false() {
        w.out.extend_from_slice(b"false");
    } else if v.is_string() {
        let s = v.to_rust_string_lossy(scope);
        w.check_room(s.len() + 2)?;
        write_str(&mut w.out, &s);
    } else if v.is_number() {
        write_number(scope, w, v)?;
    } else if v.is_big_int() {
        let s = v.to_rust_string_lossy(scope);
        write_str(&mut w.out, &s);
    } else if is_bytes(v) {
        let bytes = copy_bytes(scope, v);
        w.check_room(mime::data_uri_room(bytes.len()))?;
        write_str(&mut w.out, &mime::data_uri(&bytes));
    } else if let Ok(obj) = v8::Local::<v8::Object>::try_from(v) {
        if depth > w.limits.max_depth {
            return Err(too_deep(w.limits));
        }
        w.enter(scope, obj)?;
        let r = if v.is_array() {
            write_array(scope, w, obj, depth)
        } else {
            write_object(scope, w, obj, depth)
        };
        w.path.pop();
        r?;
    } else {
        // undefined, functions and symbols inside arrays.
        w.out.extend_from_slice(b"null");
    }
    w.check_room(0)
}

fn write_array<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    w: &mut Writer,
    obj: v8::Local<'s, v8::Object>,
    depth: usize,
) -> Result<()> {
    let length_key = v8::String::new(scope, "length").ok_or(THROWN)?;
    let len = obj
        .get(scope, length_key.into())
        .ok_or(THROWN)?
        .uint32_value(scope)
        .unwrap_or(0);
    w.out.push(b'[');
    for i in 0..len {
        if i > 0 {
            w.out.push(b',');
        }
        v8::scope!(let inner, scope);
        let item = obj.get_index(inner, i).ok_or(THROWN)?;
        let key = v8::Integer::new_from_unsigned(inner, i).into();
        let item = prepare(inner, item, key)?;
        if is_skipped(item) {
            w.out.extend_from_slice(b"null");
        } else {
            write_value(inner, w, item, depth + 1)?;
        }
        w.check_room(0)?;
    }
    w.out.push(b']');
    Ok(())
}

fn write_object<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    w: &mut Writer,
    obj: v8::Local<'s, v8::Object>,
    depth: usize,
) -> Result<()> {
    let names = obj
        .get_own_property_names(
            scope,
            v8::GetPropertyNamesArgs {
                mode: v8::KeyCollectionMode::OwnOnly,
                property_filter: v8::PropertyFilter::ONLY_ENUMERABLE
                    | v8::PropertyFilter::SKIP_SYMBOLS,
                index_filter: v8::IndexFilter::IncludeIndices,
                key_conversion: v8::KeyConversionMode::ConvertToString,
            },
        )
        .ok_or(THROWN)?;
    w.out.push(b'{');
    let mut first = true;
    for i in 0..names.length() {
        v8::scope!(let inner, scope);
        let key = names.get_index(inner, i).ok_or(THROWN)?;
        let item = obj.get(inner, key).ok_or(THROWN)?;
        let item = prepare(inner, item, key)?;
        if is_skipped(item) {
            continue;
        }
        if !first {
            w.out.push(b',');
        }
        first = false;
        let key_text = key.to_rust_string_lossy(inner);
        w.check_room(key_text.len() + 3)?;
        write_str(&mut w.out, &key_text);
        w.out.push(b':');
        write_value(inner, w, item, depth + 1)?;
    }
    w.out.push(b'}');
    Ok(())
}

fn write_number<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    w: &mut Writer,
    v: v8::Local<'s, v8::Value>,
) -> Result<()> {
    let n = v.number_value(scope).unwrap_or(f64::NAN);
    if !n.is_finite() {
        w.out.extend_from_slice(b"null");
    } else if n.fract() == 0.0 && n.abs() < 9.0e15 {
        // Integers print the same in Rust and JS (and -0 prints as 0).
        w.out.extend_from_slice((n as i64).to_string().as_bytes());
    } else {
        // V8's own number-to-text, so 1e21 and 0.1 read exactly as in JS.
        let text = v.to_string(scope).ok_or(THROWN)?;
        w.out
            .extend_from_slice(text.to_rust_string_lossy(scope).as_bytes());
    }
    Ok(())
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn copy_bytes<'s>(scope: &mut v8::PinScope<'s, '_>, v: v8::Local<'s, v8::Value>) -> Vec<u8> {
    if let Ok(view) = v8::Local::<v8::ArrayBufferView>::try_from(v) {
        let mut bytes = vec![0u8; view.byte_length()];
        view.copy_contents(&mut bytes);
        return bytes;
    }
    if let Ok(ab) = v8::Local::<v8::ArrayBuffer>::try_from(v) {
        let len = ab.byte_length();
        if let Some(view) = v8::Uint8Array::new(scope, ab, 0, len) {
            let mut bytes = vec![0u8; len];
            view.copy_contents(&mut bytes);
            return bytes;
        }
    }
    if let Ok(sab) = v8::Local::<v8::SharedArrayBuffer>::try_from(v) {
        let store = sab.get_backing_store();
        return store.iter().map(|c| c.get()).collect();
    }
    Vec::new()
}

impl Writer {
    fn check_room(&self, extra: usize) -> Result<()> {
        if self.out.len() + extra > self.limits.max_bytes {
            return Err(too_large(self.limits));
        }
        Ok(())
    }

    /// Pushes a container on the path, refusing one already on it (a cycle).
    fn enter<'s>(
        &mut self,
        scope: &mut v8::PinScope<'s, '_>,
        obj: v8::Local<'s, v8::Object>,
    ) -> Result<()> {
        let hash = obj.get_identity_hash().get();
        for (h, seen) in &self.path {
            if *h == hash && v8::Local::new(scope, seen) == obj {
                return Err(cycle());
            }
        }
        self.path.push((hash, v8::Global::new(scope, obj)));
        Ok(())
    }
}
