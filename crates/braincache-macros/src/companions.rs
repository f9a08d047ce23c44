//! The companions of a memoized function `f`: `f_cache_key`, `f_invalidate` and `f_refresh`.
//!
//! They sit next to `f` (in its module, or in its `impl` block) with `f`'s visibility:
//!
//! - `f_cache_key(&args) -> Result<String>`: the key `f` stores these arguments' result under;
//! - `f_invalidate(&args) -> Result<bool>`: deletes that entry (whether one was there), so the
//!   next call of `f` computes again;
//! - `f_refresh(args) -> R`: runs `f`'s body now, stores its result (as `f` would: `Ok` only,
//!   `Some` only under `skip_none`) and returns it.
//!
//! The key companions take the key arguments only (not those in `ignore`, nor `_`), by
//! reference; a method's companions take `&self`. `f_refresh` has `f`'s signature and body and
//! the same call as `f`, with a key marked "refreshing". Each builds the key from the same
//! arguments as `f`, spanned the same way, so a type error in `f` is reported once (the
//! compiler drops identical diagnostics) rather than once per companion.

use crate::expand::{KeyArg, respan};
use crate::options::Options;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{AttrStyle, FnArg, ItemFn, Pat};

/// What the companions share with `f`'s own expansion.
pub(crate) struct Parts<'a> {
    pub(crate) func: &'a ItemFn,
    pub(crate) options: &'a Options,
    /// `::braincache::__private`, or the `crate = "…"` path's.
    pub(crate) private: &'a TokenStream,
    /// `f`'s key arguments.
    pub(crate) args: &'a [KeyArg],
    /// `f`'s statements adding each key argument (`key_arg(&mut key, &x);`).
    pub(crate) key_args: &'a [TokenStream],
    /// The local that holds the key.
    pub(crate) key: &'a syn::Ident,
    /// The cache expression.
    pub(crate) cache: &'a TokenStream,
    /// `f`'s call of the memoizing helper, with the key in `key`.
    pub(crate) call: &'a TokenStream,
}

/// The three companions, or nothing with `no_companions`.
pub(crate) fn generate(parts: &Parts<'_>) -> TokenStream {
    if parts.options.no_companions.is_some() {
        return TokenStream::new();
    }
    let Parts {
        func,
        options,
        private,
        args,
        key_args,
        key,
        cache,
        call,
    } = parts;
    let name = &func.sig.ident;
    let vis = &func.vis;
    let (key_fn, invalidate_fn, refresh_fn) = (
        format_ident!("{}_cache_key", name),
        format_ident!("{}_invalidate", name),
        format_ident!("{}_refresh", name),
    );
    // `cfg` so a companion exists exactly when `f` does; lint levels so `f`'s allowances hold.
    let kept: Vec<_> = func
        .attrs
        .iter()
        .filter(|a| {
            matches!(a.style, AttrStyle::Outer)
                && ["cfg", "allow", "warn", "deny", "forbid"]
                    .iter()
                    .any(|n| a.path().is_ident(n))
        })
        .collect();
    let path = |suffix: &str| match &options.name {
        Some(name) => quote!(#name),
        None => quote! {{
            fn __braincache_site() {}
            #private::companion_site_path(#private::type_name_of_val(&__braincache_site), #suffix)
        }},
    };

    // The key companions' parameters: `&self` when `f` has a receiver, then `x: &T` for each key
    // argument. Their statements pass `x` (a `&T`) where `f`'s pass `&x`, spanned at the same
    // argument: the same `T: Serialize` obligation at the same place, so an error is one error.
    let receiver = func.sig.inputs.iter().find_map(|input| match input {
        FnArg::Receiver(_) => Some(quote!(&self,)),
        FnArg::Typed(_) => None,
    });
    let mut params = Vec::new();
    for input in &func.sig.inputs {
        let FnArg::Typed(t) = input else { continue };
        let Pat::Ident(p) = &*t.pat else { continue };
        let ident = &p.ident;
        if args.iter().any(|a| !a.is_receiver && a.ident == *ident) {
            let ty = &t.ty;
            params.push(quote!(#ident: &#ty));
        }
    }
    let ref_key_args: Vec<TokenStream> = args
        .iter()
        .map(|arg| {
            let ident = &arg.ident;
            let private = respan((*private).clone(), arg.span);
            quote_spanned!(arg.span=> #private::key_arg(&mut #key, #ident);)
        })
        .collect();
    let generics = &func.sig.generics;
    let where_clause = &func.sig.generics.where_clause;
    let key_path = path("_cache_key");
    let invalidate_path = path("_invalidate");
    let refresh_path = path("_refresh");
    let allow = quote! {
        #[allow(dead_code, clippy::ptr_arg, clippy::trivially_copy_pass_by_ref, clippy::borrowed_box)]
    };
    let doc_key = format!(
        " The cache key under which `{name}` stores its result for these arguments (`#[cache]` \
         companion).\n\n # Errors\n An invalid-key error when the arguments cannot be encoded."
    );
    let doc_invalidate = format!(
        " Deletes `{name}`'s stored result for these arguments, so its next call computes \
         again; returns whether an entry was there (`#[cache]` companion).\n\n # Errors\n \
         An invalid-key error when the arguments cannot be encoded; the cache's errors."
    );
    let doc_refresh = format!(
        " Runs `{name}` now, whatever is stored, stores its result as `{name}` would and \
         returns it (`#[cache]` companion)."
    );

    let mut refresh_sig = func.sig.clone();
    refresh_sig.ident = refresh_fn;
    let inner = func
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Inner(_)));
    let body_key = |path: &TokenStream, builder: TokenStream, stmts: &[TokenStream]| {
        let key_mut = (!args.is_empty()).then(|| quote!(mut));
        quote! {
            let #key_mut #key = #private::KeyBuilder::#builder(#path);
            #(#stmts)*
            let #key = #key.finish();
        }
    };
    let key_stmts = body_key(&key_path, quote!(new), &ref_key_args);
    let invalidate_stmts = body_key(&invalidate_path, quote!(new), &ref_key_args);
    let refresh_stmts = body_key(&refresh_path, quote!(refreshing), key_args);
    // An async `f` has an async cache: its `f_invalidate` is async too.
    let (invalidate_async, invalidate_call) = if func.sig.asyncness.is_some() {
        (
            quote!(async),
            quote!(#private::invalidate_async(#cache, #key).await),
        )
    } else {
        (quote!(), quote!(#private::invalidate(#cache, #key)))
    };
    quote! {
        #(#kept)*
        #allow
        #[doc = #doc_key]
        #vis fn #key_fn #generics (#receiver #(#params),*) -> #private::Result<#private::String>
        #where_clause
        {
            #key_stmts
            #private::key_string(#key)
        }

        #(#kept)*
        #allow
        #[doc = #doc_invalidate]
        #vis #invalidate_async fn #invalidate_fn #generics (#receiver #(#params),*) -> #private::Result<bool>
        #where_clause
        {
            #invalidate_stmts
            #invalidate_call
        }

        #(#kept)*
        #[allow(dead_code)]
        #[doc = #doc_refresh]
        #vis #refresh_sig {
            #(#inner)*
            #refresh_stmts
            #call
        }
    }
}
