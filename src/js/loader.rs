//! Module resolution for user scripts. Function-call scripts are single
//! modules: every import is refused with an error that names it, and the
//! refusal is recorded so the call reports `permission_denied`.

use std::cell::RefCell;
use std::rc::Rc;

use deno_core::{
    ModuleLoadOptions, ModuleLoadReferrer, ModuleLoadResponse, ModuleLoader, ModuleSpecifier,
    ResolutionKind,
};
use deno_error::JsErrorBox;

/// The first refused import of the current call, shared with the sandbox.
pub type Denials = Rc<RefCell<Option<String>>>;

pub struct Loader {
    pub denials: Denials,
}

impl Loader {
    fn refuse(&self, specifier: &str) -> JsErrorBox {
        let message = format!(
            "Import of '{specifier}' is not allowed: function-call scripts are single modules \
             and nothing is fetched from the network"
        );
        self.denials
            .borrow_mut()
            .get_or_insert_with(|| message.clone());
        JsErrorBox::type_error(message)
    }
}

impl ModuleLoader for Loader {
    fn resolve(
        &self,
        specifier: &str,
        referrer: &str,
        kind: ResolutionKind,
    ) -> Result<ModuleSpecifier, JsErrorBox> {
        // The host's own root modules (main or side) come with referrer ".";
        // user imports always name the importing module.
        if kind == ResolutionKind::MainModule || referrer == "." {
            return ModuleSpecifier::parse(specifier).map_err(JsErrorBox::from_err);
        }
        Err(self.refuse(specifier))
    }

    fn load(
        &self,
        specifier: &ModuleSpecifier,
        _referrer: Option<&ModuleLoadReferrer>,
        _options: ModuleLoadOptions,
    ) -> ModuleLoadResponse {
        ModuleLoadResponse::Sync(Err(self.refuse(specifier.as_str())))
    }
}
