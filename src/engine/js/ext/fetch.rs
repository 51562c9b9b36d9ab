//! `fetch`: requests to hosts on `ALLOW_NET`, through [`super::fetch_client`].

use std::cell::RefCell;
use std::rc::Rc;

use deno_core::{OpState, ToJsBuffer, op2};
use deno_error::JsErrorBox;

use super::fetch_client::{FetchError, FetchRequest, FetchResponse};
use super::{permissions, record_denial};

#[op2]
#[serde]
pub(super) async fn op_isoexec_fetch(
    state: Rc<RefCell<OpState>>,
    #[serde] request: FetchRequest,
    #[buffer(copy)] body: Vec<u8>,
) -> Result<(FetchResponse, ToJsBuffer), JsErrorBox> {
    let perms = permissions(&state.borrow());
    match super::fetch_client::send(&perms, request, body).await {
        Ok((response, bytes)) => Ok((response, bytes.into())),
        Err(FetchError::Denied(message)) => {
            record_denial(&mut state.borrow_mut(), &message);
            Err(JsErrorBox::new("PermissionDenied", message))
        }
        Err(FetchError::Type(message)) => Err(JsErrorBox::type_error(message)),
        Err(FetchError::Network(message)) => Err(JsErrorBox::type_error(message)),
    }
}
