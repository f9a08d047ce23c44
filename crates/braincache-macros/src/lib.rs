//! The `#[cache]` attribute of braincache (docs to come).

#![deny(missing_docs)]

mod expand;
mod options;

use proc_macro::TokenStream;

/// Memoizes a function in a braincache `BrainCache`.
#[proc_macro_attribute]
pub fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand::expand(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        // Keep the function as written next to the error, so its callers still compile and only
        // the real mistake is reported.
        Err(e) => {
            let error = e.into_compile_error();
            quote::quote!(#error #item).into()
        }
    }
}
