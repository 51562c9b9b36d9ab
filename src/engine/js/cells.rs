//! Notebook cells: source evaluated in V8's REPL mode through an inspector
//! session on the sandbox's own runtime, as Deno's REPL does. Top-level
//! declarations persist (and may be declared again), top-level `await`
//! works, and the last expression's value is the cell's result.

use std::rc::Rc;
use std::time::Instant;

use deno_core::futures::StreamExt;
use deno_core::futures::channel::mpsc;
use deno_core::{
    InspectorMsg, InspectorMsgKind, InspectorSessionKind, JsRuntimeInspector,
    LocalInspectorSession, PollEventLoopOptions, v8,
};
use serde_json::{Value, json};

use super::Sandbox;
use super::convert::{self, ConvertLimits};
use crate::engine::watchdog::CancelFlag;

/// How often a cell that awaits looks for an interrupt.
const INTERRUPT_LOOK: std::time::Duration = std::time::Duration::from_millis(10);

/// An inspector session on one sandbox, and where its replies arrive.
pub(crate) struct CellSession {
    session: LocalInspectorSession,
    replies: mpsc::UnboundedReceiver<InspectorMsg>,
    next_id: i32,
    /// Global property a result is parked under while Rust converts it;
    /// random per session, so user code cannot name it.
    slot: String,
}

/// How a cell's evaluation ended, before limits are considered.
pub(crate) enum CellOutcome {
    /// The last expression's value, converted like a function result.
    Value(String),
    /// The cell threw: the exception as V8 describes it (with its stack).
    Threw(String),
    /// A Python cell raised; its traceback is already on stderr.
    Raised,
    /// No reply came before the deadline (terminated, or still waiting).
    NoReply,
    /// Converting the value failed (too large, too deep, or it threw).
    Unconvertible(String),
}

impl CellSession {
    /// Opens a session on `sandbox` (made with an inspector).
    pub(crate) fn open(sandbox: &mut Sandbox, slot: String) -> CellSession {
        let (tx, rx) = mpsc::unbounded();
        let inspector: Rc<JsRuntimeInspector> = sandbox.runtime_mut().inspector();
        let session = JsRuntimeInspector::create_local_session(
            inspector,
            Box::new(move |msg| {
                let _ = tx.unbounded_send(msg);
            }),
            InspectorSessionKind::NonBlocking {
                wait_for_disconnect: false,
            },
        );
        CellSession {
            session,
            replies: rx,
            next_id: 1,
            slot,
        }
    }

    /// Sends one protocol command and waits (running the event loop) for
    /// its reply, up to `deadline`.
    async fn call(
        &mut self,
        sandbox: &mut Sandbox,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Option<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.session.post_message(id, method, Some(params));
        let replies = &mut self.replies;
        let wait = Box::pin(async move {
            while let Some(msg) = replies.next().await {
                if let InspectorMsgKind::Message(got) = msg.kind
                    && got == id
                {
                    return Ok::<String, ()>(msg.content);
                }
            }
            Err(())
        });
        let runtime = sandbox.runtime_mut();
        let reply = tokio::time::timeout_at(
            deadline.into(),
            runtime.with_event_loop_future(wait, PollEventLoopOptions::default()),
        )
        .await;
        match reply {
            Ok(Ok(text)) => serde_json::from_str::<Value>(&text).ok(),
            _ => None,
        }
    }

    /// Evaluates `js` (already JavaScript, as a script) as the next cell.
    /// An interrupt (`cancel`) ends the wait at once, also while the cell
    /// awaits a timer or a promise and no JS runs for the watchdog to stop.
    pub(crate) async fn evaluate(
        &mut self,
        sandbox: &mut Sandbox,
        js: &str,
        deadline: Instant,
        limits: ConvertLimits,
        cancel: &CancelFlag,
    ) -> CellOutcome {
        let params = json!({
            "expression": js,
            "replMode": true,
            "awaitPromise": true,
            "returnByValue": false,
            "objectGroup": "cell",
            "silent": false,
        });
        let evaluated = self.call(sandbox, "Runtime.evaluate", params, deadline);
        let interrupted = async {
            while !cancel.is_cancelled() {
                tokio::time::sleep(INTERRUPT_LOOK).await;
            }
        };
        let reply = tokio::select! {
            r = evaluated => r,
            () = interrupted => None,
        };
        let Some(reply) = reply else {
            return CellOutcome::NoReply;
        };
        let result = &reply["result"];
        if let Some(details) = result.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .map(str::to_string)
                .or_else(|| details["text"].as_str().map(str::to_string))
                .unwrap_or_else(|| "Uncaught exception".into());
            self.release(sandbox, deadline).await;
            return CellOutcome::Threw(crate::engine::types::cap_error_text(text));
        }
        let remote = &result["result"];
        let outcome = match remote.get("objectId").and_then(Value::as_str) {
            Some(object_id) => {
                self.convert_object(sandbox, object_id, deadline, limits)
                    .await
            }
            // A primitive comes by value: a string is held to the same
            // MAX_RESULT_BYTES as any other result.
            None => {
                let json = primitive_json(remote);
                if json.len() > limits.max_bytes {
                    CellOutcome::Unconvertible(format!(
                        "the result is {} bytes of JSON, over the limit of {} (MAX_RESULT_BYTES)",
                        json.len(),
                        limits.max_bytes
                    ))
                } else {
                    CellOutcome::Value(json)
                }
            }
        };
        self.release(sandbox, deadline).await;
        outcome
    }

    /// Parks the object under the slot, converts it from Rust, removes it.
    async fn convert_object(
        &mut self,
        sandbox: &mut Sandbox,
        object_id: &str,
        deadline: Instant,
        limits: ConvertLimits,
    ) -> CellOutcome {
        let declaration = format!(
            "function () {{ 'use strict'; globalThis[{}] = this; }}",
            serde_json::Value::String(self.slot.clone())
        );
        let params = json!({
            "objectId": object_id,
            "functionDeclaration": declaration,
            "silent": true,
        });
        if self
            .call(sandbox, "Runtime.callFunctionOn", params, deadline)
            .await
            .is_none()
        {
            return CellOutcome::NoReply;
        }
        let slot = self.slot.clone();
        let runtime = sandbox.runtime_mut();
        deno_core::scope!(scope, runtime);
        v8::tc_scope!(let tc, scope);
        let global = tc.get_current_context().global(tc);
        let Some(key) = v8::String::new(tc, &slot) else {
            return CellOutcome::Unconvertible("the result could not be read".into());
        };
        let value = global.get(tc, key.into());
        let _ = global.delete(tc, key.into());
        let Some(value) = value else {
            return CellOutcome::Unconvertible("the result could not be read".into());
        };
        match convert::to_json(tc, value, limits) {
            Ok(json) => CellOutcome::Value(json),
            Err(convert::ConvertError::OutputLimit(m)) => CellOutcome::Unconvertible(m),
            Err(convert::ConvertError::Thrown { synthetic }) => {
                CellOutcome::Unconvertible(synthetic.map_or_else(
                    || "converting the result threw".into(),
                    |(name, message)| format!("{name}: {message}"),
                ))
            }
        }
    }

    async fn release(&mut self, sandbox: &mut Sandbox, deadline: Instant) {
        let _ = self
            .call(
                sandbox,
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": "cell"}),
                deadline,
            )
            .await;
    }
}

/// A primitive the inspector sent by value, as the JSON a function result
/// would give: BigInts as decimal strings, `undefined` and non-finite
/// numbers as `null`.
fn primitive_json(remote: &Value) -> String {
    match remote["type"].as_str() {
        Some("bigint") => {
            let text = remote["unserializableValue"].as_str().unwrap_or("0");
            Value::String(text.trim_end_matches('n').to_string()).to_string()
        }
        Some("undefined") => "null".into(),
        _ => match remote.get("value") {
            Some(v) => v.to_string(),
            None => "null".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_read_like_function_results() {
        assert_eq!(primitive_json(&json!({"type": "number", "value": 3})), "3");
        assert_eq!(
            primitive_json(&json!({"type": "string", "value": "a"})),
            "\"a\""
        );
        assert_eq!(primitive_json(&json!({"type": "undefined"})), "null");
        assert_eq!(
            primitive_json(&json!({"type": "number", "unserializableValue": "NaN"})),
            "null"
        );
        assert_eq!(
            primitive_json(&json!({"type": "bigint", "unserializableValue": "12n"})),
            "\"12\""
        );
    }
}
