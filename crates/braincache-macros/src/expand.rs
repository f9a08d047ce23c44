//! Turning a function into its memoized form.

use crate::options::{Options, Ttl};
use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    AttrStyle, FnArg, GenericArgument, GenericParam, Ident, ItemFn, Pat, PathArguments, ReturnType,
    Type,
};

/// Expands `#[cache(attr)] item`. On error the caller emits the error next to the unchanged
/// function, so call sites still type-check and only the real mistake is reported.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = Options::parse(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let krate = options
        .krate
        .as_ref()
        .map_or_else(|| quote!(::braincache), ToTokens::to_token_stream);
    let private = quote!(#krate::__private);

    check_signature(&func)?;
    let ret = match &func.sig.output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default => {
            return Err(syn::Error::new(
                func.sig.ident.span(),
                "a `#[cache]` function must return a value: there is nothing to cache",
            ));
        }
    };
    check_return_type(ret)?;
    let mode = Mode::of(ret, &options)?;
    let args = key_args(&func, &options)?;
    let body = &func.block;

    // The stored type's bounds are checked by the call; span its name at that type so an error
    // points there.
    let value_span = match mode {
        Mode::Plain | Mode::Option => ret.span(),
        Mode::Result => first_type_argument(ret).map_or_else(|| ret.span(), Spanned::span),
    };
    let path = match &options.name {
        Some(name) => quote!(#name),
        None => quote! {{
            fn __braincache_site() {}
            #private::site_path(#private::type_name_of_val(&__braincache_site))
        }},
    };
    let key = Ident::new("__braincache_key", Span::mixed_site());
    let key_mut = (!args.is_empty()).then(|| quote!(mut));
    let key_args: Vec<TokenStream> = args
        .iter()
        .map(|arg| {
            let ident = &arg.ident;
            let value = if arg.is_receiver {
                quote!(#ident)
            } else {
                quote_spanned!(arg.span=> &#ident)
            };
            let private = respan(private.clone(), arg.span);
            quote_spanned!(arg.span=> #private::key_arg(&mut #key, #value);)
        })
        .collect();
    let is_async = func.sig.asyncness.is_some();
    let cache = match (&options.cache, is_async) {
        (Some(expr), false) => quote_spanned!(expr.span()=> #private::as_cache(&(#expr))),
        (None, false) => quote!(#private::default_cache()),
        (Some(expr), true) => quote_spanned!(expr.span()=> #private::as_async_cache(&(#expr))),
        (None, true) => quote!(#private::default_async_cache()),
    };
    let ttl = match &options.ttl {
        Some(Ttl::Secs(expr)) => quote_spanned!(expr.span()=> #private::ttl_secs(#expr)),
        Some(Ttl::Millis(expr)) => quote_spanned!(expr.span()=> #private::ttl_millis(#expr)),
        None => quote!(#private::NO_TTL),
    };
    let call = match mode {
        _ if options.has_freshness() => quote!(call_fresh),
        Mode::Plain => quote!(call),
        Mode::Result => quote!(call_result),
        Mode::Option => quote!(call_option),
    };
    let call = if is_async {
        // The same keys and modes; the body runs as an async closure (`async fn` only: an
        // `async fn`'s body is what the closure awaits).
        let call = Ident::new(&format!("{call}_async"), Span::call_site());
        respan(quote!(#private::#call), value_span)
    } else {
        respan(quote!(#private::#call), value_span)
    };
    let call_expr = if is_async && !options.has_freshness() {
        let closure = quote!(async move || -> #ret #body);
        quote_spanned!(value_span=> #call(#cache, #key, #ttl, #closure).await)
    } else if options.has_freshness() {
        // The function may refresh in the background (a pool thread, or a spawned task for an
        // `async fn`): its closure (and future) must be `Send + 'static`.
        let closure = if is_async {
            quote!(async move || -> #ret #body)
        } else {
            quote!(move || -> #ret #body)
        };
        let wait = is_async.then(|| quote!(.await));
        let opt = |e: &Option<syn::Expr>| match e {
            Some(e) => quote_spanned!(e.span()=> ::core::option::Option::Some(#e)),
            None => quote!(::core::option::Option::None),
        };
        let (stale, early, lease) = (
            opt(&options.stale),
            opt(&options.early_refresh),
            opt(&options.lease),
        );
        quote_spanned!(value_span=> #call(
            #cache,
            #key,
            &#private::freshness(#ttl, #stale, #early, #lease),
            #closure,
        ) #wait)
    } else {
        let closure = quote!(move || -> #ret #body);
        quote_spanned!(value_span=> #call(#cache, #key, #ttl, #closure))
    };

    let outer = func
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Outer));
    let inner = func
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Inner(_)));
    let companions = crate::companions::generate(&crate::companions::Parts {
        func: &func,
        options: &options,
        private: &private,
        args: &args,
        key_args: &key_args,
        key: &key,
        cache: &cache,
        call: &call_expr,
    });
    let vis = &func.vis;
    let sig = &func.sig;
    Ok(quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            let #key_mut #key = #private::KeyBuilder::new(#path);
            #(#key_args)*
            let #key = #key.finish();
            #call_expr
        }
        #companions
    })
}

/// `tokens` with every span set to `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(g) = &tree {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tree = TokenTree::Group(group);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// How the return value is stored.
#[derive(Clone, Copy)]
enum Mode {
    /// Stored as is (`Option` included: `None` is a value).
    Plain,
    /// `Result<T, E>`: only `Ok(T)` is stored.
    Result,
    /// `skip_none`: only `Some` is stored.
    Option,
}

impl Mode {
    /// Decided from the return type's last path segment (`Result`, `io::Result`,
    /// `anyhow::Result` all count), or forced by `result` / `skip_none` for type aliases.
    fn of(ret: &Type, options: &Options) -> syn::Result<Mode> {
        let last = last_segment_name(ret);
        if options.result.is_some() {
            return Ok(Mode::Result);
        }
        if let Some(skip) = &options.skip_none {
            if last.as_deref() == Some("Result") {
                return Err(syn::Error::new(
                    skip.span(),
                    "`skip_none` applies to functions returning `Option`; this one returns `Result`, whose `Err` is never cached",
                ));
            }
            return Ok(Mode::Option);
        }
        Ok(if last.as_deref() == Some("Result") {
            Mode::Result
        } else {
            Mode::Plain
        })
    }
}

fn strip_groups(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(g) => ty = &g.elem,
            Type::Paren(p) => ty = &p.elem,
            _ => return ty,
        }
    }
}

fn last_segment_name(ty: &Type) -> Option<String> {
    match strip_groups(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// `T` in `Result<T, E>` / `io::Result<T>`.
fn first_type_argument(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = strip_groups(ty) else {
        return None;
    };
    let PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Refuses what cannot be memoized correctly, each error pointing at the token to blame.
fn check_signature(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    if let Some(token) = &sig.constness {
        return Err(syn::Error::new(
            token.span(),
            "`#[cache]` cannot memoize a `const fn`: a cache lookup cannot run at compile time",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.dots.span(),
            "`#[cache]` cannot memoize a variadic function",
        ));
    }
    for param in &sig.generics.params {
        let (ident, what) = match param {
            GenericParam::Type(t) => (&t.ident, "type"),
            GenericParam::Const(c) => (&c.ident, "const"),
            GenericParam::Lifetime(_) => continue,
        };
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "`#[cache]` does not support generic functions ({what} parameter `{ident}`): the key \
                 holds the argument values but not the type parameters, so `f::<u32>(1)` and \
                 `f::<u64>(1)` could share an entry; memoize a non-generic function per type instead"
            ),
        ));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                let by_ref_mut = if r.reference.is_some() {
                    r.mutability.map(|m| m.span())
                } else if r.colon_token.is_some() {
                    match &*r.ty {
                        Type::Reference(t) => t.mutability.map(|m| m.span()),
                        _ => {
                            return Err(self_by_value(r.self_token.span()));
                        }
                    }
                } else {
                    return Err(self_by_value(r.self_token.span()));
                };
                if let Some(span) = by_ref_mut {
                    return Err(syn::Error::new(
                        span,
                        "`#[cache]` cannot memoize a method taking `&mut self`: on a cache hit the body \
                         does not run, so its changes to `self` would be skipped; take `&self`",
                    ));
                }
            }
            FnArg::Typed(t) => {
                match &*t.pat {
                    Pat::Ident(p) => {
                        if let Some(by_ref) = &p.by_ref {
                            return Err(syn::Error::new(
                                by_ref.span(),
                                "`#[cache]` arguments must be plain names (`x: T`), not `ref` bindings",
                            ));
                        }
                        if let Some((at, _)) = &p.subpat {
                            return Err(syn::Error::new(
                                at.span(),
                                "`#[cache]` arguments must be plain names (`x: T`), not `x @ pattern`",
                            ));
                        }
                    }
                    Pat::Wild(_) => {}
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "`#[cache]` arguments must be plain names (`x: T`) so they can be \
                             serialized into the key; destructure inside the body",
                        ));
                    }
                }
                check_argument_type(&t.ty)?;
            }
        }
    }
    Ok(())
}

fn self_by_value(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "`#[cache]` cannot memoize a method that takes `self` by value; take `&self` (it becomes \
         part of the key, so `Self` must be `Serialize`; `ignore = [self]` leaves it out), or make \
         it an associated function with explicit arguments",
    )
}

fn check_argument_type(ty: &Type) -> syn::Result<()> {
    match strip_groups(ty) {
        Type::Reference(r) => {
            if let Some(m) = &r.mutability {
                return Err(syn::Error::new(
                    m.span(),
                    "`#[cache]` cannot memoize a function taking `&mut`: on a cache hit the body \
                     does not run, so its writes through this reference would be skipped",
                ));
            }
            check_argument_type(&r.elem)
        }
        Type::ImplTrait(t) => Err(syn::Error::new(
            t.impl_token.span(),
            "`#[cache]` does not support `impl Trait` arguments (a generic function): the key \
             holds the argument values but not their types; use a concrete type",
        )),
        _ => Ok(()),
    }
}

fn check_return_type(ty: &Type) -> syn::Result<()> {
    match strip_groups(ty) {
        Type::ImplTrait(t) => Err(syn::Error::new(
            t.impl_token.span(),
            "`#[cache]` cannot store an `impl Trait` return value: return a concrete type that \
             implements `Serialize` and `Deserialize`",
        )),
        Type::Never(t) => Err(syn::Error::new(
            t.bang_token.span(),
            "a `#[cache]` function must return a value: `!` never does",
        )),
        _ => Ok(()),
    }
}

/// One argument that goes into the key.
pub(crate) struct KeyArg {
    pub(crate) ident: Ident,
    pub(crate) is_receiver: bool,
    /// Where errors about it point: its name, or `self`.
    pub(crate) span: Span,
}

/// The key arguments, in declaration order, minus `ignore = [..]` and `_`.
fn key_args(func: &ItemFn, options: &Options) -> syn::Result<Vec<KeyArg>> {
    let mut all = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => all.push(KeyArg {
                ident: Ident::new("self", r.self_token.span()),
                is_receiver: true,
                span: r.self_token.span(),
            }),
            FnArg::Typed(t) => {
                if let Pat::Ident(p) = &*t.pat {
                    all.push(KeyArg {
                        ident: p.ident.clone(),
                        is_receiver: false,
                        span: p.ident.span(),
                    });
                }
            }
        }
    }
    let mut ignored: Vec<&Ident> = Vec::new();
    for name in &options.ignore {
        if ignored.contains(&name) {
            return Err(syn::Error::new(
                name.span(),
                format!("`{name}` is listed twice in `ignore`"),
            ));
        }
        if !all.iter().any(|a| a.ident == *name) {
            let names: Vec<String> = all.iter().map(|a| format!("`{}`", a.ident)).collect();
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`ignore` names `{name}`, which is not an argument of this function{}",
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" (its arguments: {})", names.join(", "))
                    }
                ),
            ));
        }
        ignored.push(name);
    }
    Ok(all
        .into_iter()
        .filter(|a| !ignored.iter().any(|i| **i == a.ident))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::expand;
    use proc_macro2::{TokenStream, TokenTree};
    use quote::quote;

    fn idents(tokens: TokenStream, out: &mut Vec<String>) {
        for tree in tokens {
            match tree {
                TokenTree::Ident(i) => out.push(i.to_string()),
                TokenTree::Group(g) => idents(g.stream(), out),
                _ => {}
            }
        }
    }

    fn expanded(attr: TokenStream, item: TokenStream) -> String {
        match expand(attr, item) {
            Ok(tokens) => tokens.to_string(),
            Err(e) => panic!("expansion failed: {e}"),
        }
    }

    /// Generated code reaches braincache only through the `crate` path, and names no other
    /// crate (`std`, `core`, `serde`) that the user's crate might shadow or lack.
    #[test]
    fn generated_paths_go_through_the_crate_path() {
        let item = quote! {
            fn f(&self, a: u32, b: &str) -> Result<Vec<u8>, String> { Ok(vec![]) }
        };
        let attr = quote!(
            crate = "::renamed",
            ttl = 5,
            cache = C,
            name = "n",
            ignore = [b]
        );
        let out = expand(attr, item.clone()).unwrap_or_else(|e| panic!("{e}"));
        let mut names = Vec::new();
        idents(out, &mut names);
        assert!(names.iter().any(|n| n == "renamed"));
        for forbidden in ["braincache", "std", "core", "serde"] {
            assert!(
                !names.iter().any(|n| n == forbidden),
                "{forbidden} in {names:?}"
            );
        }

        let default = expanded(quote!(ttl_ms = 5), item);
        for (i, _) in default.match_indices(":: braincache") {
            assert!(
                default[i..].starts_with(":: braincache :: __private ::"),
                "{default}"
            );
        }
        assert!(!default.contains(":: std") && !default.contains(":: core"));
    }

    /// The kinds of return values pick the matching helper.
    #[test]
    fn return_kinds() {
        let plain = expanded(
            quote!(),
            quote!(
                fn f() -> Option<u8> {
                    None
                }
            ),
        );
        assert!(plain.contains("__private :: call ("), "{plain}");
        let some = expanded(
            quote!(skip_none),
            quote!(
                fn f() -> Option<u8> {
                    None
                }
            ),
        );
        assert!(some.contains("__private :: call_option ("), "{some}");
        let result = expanded(
            quote!(),
            quote!(
                fn f() -> io::Result<u8> {
                    Ok(1)
                }
            ),
        );
        assert!(result.contains("__private :: call_result ("), "{result}");
        let alias = expanded(
            quote!(result),
            quote!(
                fn f() -> Out {
                    Ok(1)
                }
            ),
        );
        assert!(alias.contains("__private :: call_result ("), "{alias}");
    }

    /// Bad input is an error, never a panic.
    #[test]
    fn freshness_options_go_through_get_or_refresh() {
        let item = quote!(
            fn f(x: u32) -> u32 {
                x
            }
        );
        let out = expanded(
            quote!(ttl = 60, stale = 300, early_refresh = 1.0, lease = 10),
            item.clone(),
        );
        assert!(out.contains("__private :: call_fresh ("), "{out}");
        assert!(out.contains("__private :: freshness ("), "{out}");
        for (attr, needle) in [
            (quote!(stale = 300), "need a `ttl`"),
            (quote!(ttl = 1, lease = 1, skip_none), "plain value"),
            (quote!(ttl = 1, stale = 1, stale = 2), "more than once"),
        ] {
            let e = super::expand(attr, item.clone()).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let cases = [
            (
                quote!(),
                quote!(
                    struct S;
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f(x: u8) -> u8;
                ),
            ),
            (
                quote!(ttl),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(ttl = ),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(ttl = 1, ttl = 2),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(name = ""),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(name = 5),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(ignore = []),
                quote!(
                    fn f(x: u8) -> u8 {
                        x
                    }
                ),
            ),
            (
                quote!(ignore = [x, x]),
                quote!(
                    fn f(x: u8) -> u8 {
                        x
                    }
                ),
            ),
            (
                quote!(ignore = x),
                quote!(
                    fn f(x: u8) -> u8 {
                        x
                    }
                ),
            ),
            (
                quote!(skip_none = true),
                quote!(
                    fn f() -> Option<u8> {
                        None
                    }
                ),
            ),
            (
                quote!(skip_none, result),
                quote!(
                    fn f() -> Option<u8> {
                        None
                    }
                ),
            ),
            (
                quote!(crate = "not a path"),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(a::b = 1),
                quote!(
                    fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    const fn f() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f<const N: usize>() -> u8 {
                        1
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f(ref x: u8) -> u8 {
                        x
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f() -> impl Copy {
                        1
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f() -> ! {
                        loop {}
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f(self: &mut Self) -> u8 {
                        1
                    }
                ),
            ),
        ];
        for (attr, item) in cases {
            let text = format!("#[cache({attr})] {item}");
            assert!(expand(attr, item).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn lifetimes_and_wildcards_are_accepted() {
        // `no_companions`: only the function itself, whose key arguments are counted below.
        let out = expanded(
            quote!(no_companions),
            quote!(
                fn f<'a>(s: &'a str, _: u8, mut n: u32) -> String {
                    n += 1;
                    format!("{s}{n}")
                }
            ),
        );
        assert!(
            out.contains("key_arg (& mut __braincache_key , & s)"),
            "{out}"
        );
        assert!(
            out.contains("key_arg (& mut __braincache_key , & n)"),
            "{out}"
        );
        assert_eq!(
            out.matches("key_arg (").count(),
            2,
            "`_` is not a key argument: {out}"
        );
    }

    /// Each memoized function gets `_cache_key`, `_invalidate` and `_refresh` companions with
    /// its visibility, the key companions taking the key arguments (not ignored ones, not `_`)
    /// by reference; `no_companions` leaves them out.
    #[test]
    fn companions() {
        let item = quote!(
            pub(crate) fn fetch(client: &Client, url: String, _: u8) -> Result<String, E> {
                Ok(url)
            }
        );
        let out = expanded(quote!(ignore = [client]), item.clone());
        assert!(
            out.contains("pub (crate) fn fetch_cache_key (url : & String)"),
            "{out}"
        );
        assert!(
            out.contains("pub (crate) fn fetch_invalidate (url : & String)"),
            "{out}"
        );
        assert!(
            out.contains(
                "pub (crate) fn fetch_refresh (client : & Client , url : String , _ : u8)"
            ),
            "{out}"
        );
        assert!(out.contains("KeyBuilder :: refreshing ("), "{out}");
        let none = expanded(quote!(ignore = [client], no_companions), item);
        assert!(!none.contains("fetch_"), "{none}");

        let method = expanded(
            quote!(),
            quote!(
                fn price(&self, cents: u64) -> u64 {
                    cents
                }
            ),
        );
        assert!(
            method.contains("fn price_cache_key (& self , cents : & u64)"),
            "{method}"
        );
        assert!(
            method.contains("fn price_refresh (& self , cents : u64)"),
            "{method}"
        );
    }
}
