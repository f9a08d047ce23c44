//! Parsing `#[cache(...)]`'s options.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token, bracketed};

/// The options of one `#[cache(...)]`.
pub(crate) struct Options {
    pub(crate) ttl: Option<Ttl>,
    pub(crate) cache: Option<Expr>,
    pub(crate) name: Option<LitStr>,
    pub(crate) ignore: Vec<Ident>,
    pub(crate) skip_none: Option<Ident>,
    pub(crate) result: Option<Ident>,
    pub(crate) krate: Option<Path>,
    /// `no_companions`: do not generate `<fn>_cache_key`, `<fn>_invalidate`, `<fn>_refresh`.
    pub(crate) no_companions: Option<Ident>,
    /// `stale = secs`: stale-while-revalidate window.
    pub(crate) stale: Option<Expr>,
    /// `early_refresh = beta`.
    pub(crate) early_refresh: Option<Expr>,
    /// `lease = secs`.
    pub(crate) lease: Option<Expr>,
}

impl Options {
    /// True when the function is memoized through `get_or_refresh`.
    pub(crate) fn has_freshness(&self) -> bool {
        self.stale.is_some() || self.early_refresh.is_some() || self.lease.is_some()
    }
}

/// `ttl = secs` or `ttl_ms = millis`.
pub(crate) enum Ttl {
    Secs(Expr),
    Millis(Expr),
}

const KNOWN: &str = "`ttl`, `ttl_ms`, `cache`, `name`, `ignore`, `skip_none`, `result`, `crate`, \
                     `no_companions`, `stale`, `early_refresh`, `lease`";

impl Options {
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Options> {
        let mut options = Options {
            ttl: None,
            cache: None,
            name: None,
            ignore: Vec::new(),
            skip_none: None,
            result: None,
            krate: None,
            no_companions: None,
            stale: None,
            early_refresh: None,
            lease: None,
        };
        let parser = syn::meta::parser(|meta| {
            let Some(ident) = meta.path.get_ident().cloned() else {
                return Err(meta.error(format!(
                    "unknown `#[cache]` option; expected one of {KNOWN}"
                )));
            };
            let duplicate =
                || syn::Error::new(ident.span(), format!("`{ident}` is given more than once"));
            match ident.to_string().as_str() {
                "ttl" | "ttl_ms" => {
                    if options.ttl.is_some() {
                        return Err(syn::Error::new(
                            ident.span(),
                            "only one of `ttl` (seconds) and `ttl_ms` (milliseconds) may be given",
                        ));
                    }
                    let expr: Expr = meta.value()?.parse()?;
                    reject_zero(&expr)?;
                    options.ttl = Some(if ident == "ttl" {
                        Ttl::Secs(expr)
                    } else {
                        Ttl::Millis(expr)
                    });
                }
                "cache" => {
                    if options.cache.is_some() {
                        return Err(duplicate());
                    }
                    options.cache = Some(meta.value()?.parse()?);
                }
                "name" => {
                    if options.name.is_some() {
                        return Err(duplicate());
                    }
                    let name: LitStr = meta.value()?.parse()?;
                    if name.value().is_empty() {
                        return Err(syn::Error::new(name.span(), "`name` must not be empty"));
                    }
                    options.name = Some(name);
                }
                "ignore" => {
                    if !options.ignore.is_empty() {
                        return Err(duplicate());
                    }
                    let list: IdentList = meta.value()?.parse()?;
                    if list.0.is_empty() {
                        return Err(syn::Error::new(
                            ident.span(),
                            "`ignore` needs at least one argument name",
                        ));
                    }
                    options.ignore = list.0;
                }
                "skip_none" => {
                    flag(&meta, &ident)?;
                    if options.skip_none.replace(ident.clone()).is_some() {
                        return Err(duplicate());
                    }
                }
                "result" => {
                    flag(&meta, &ident)?;
                    if options.result.replace(ident.clone()).is_some() {
                        return Err(duplicate());
                    }
                }
                "no_companions" => {
                    flag(&meta, &ident)?;
                    if options.no_companions.replace(ident.clone()).is_some() {
                        return Err(duplicate());
                    }
                }
                "stale" | "early_refresh" | "lease" => {
                    let slot = match ident.to_string().as_str() {
                        "stale" => &mut options.stale,
                        "early_refresh" => &mut options.early_refresh,
                        _ => &mut options.lease,
                    };
                    if slot.is_some() {
                        return Err(duplicate());
                    }
                    *slot = Some(meta.value()?.parse()?);
                }
                "crate" => {
                    if options.krate.is_some() {
                        return Err(duplicate());
                    }
                    let path: LitStr = meta.value()?.parse()?;
                    options.krate = Some(path.parse()?);
                }
                other => {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!("unknown `#[cache]` option `{other}`; expected one of {KNOWN}"),
                    ));
                }
            }
            Ok(())
        });
        parser.parse2(attr)?;
        if let (Some(skip), Some(_)) = (&options.skip_none, &options.result) {
            return Err(syn::Error::new(
                skip.span(),
                "`skip_none` applies to functions returning `Option`, `result` to functions returning `Result`: give one of them",
            ));
        }
        if options.has_freshness() {
            let span = [&options.stale, &options.early_refresh, &options.lease]
                .into_iter()
                .flatten()
                .next()
                .map_or_else(proc_macro2::Span::call_site, syn::spanned::Spanned::span);
            if options.ttl.is_none() {
                return Err(syn::Error::new(
                    span,
                    "`stale`, `early_refresh` and `lease` need a `ttl`: they say what happens \
                     around its end",
                ));
            }
            if options.skip_none.is_some() || options.result.is_some() {
                return Err(syn::Error::new(
                    span,
                    "`stale`, `early_refresh` and `lease` apply to functions returning a plain \
                     value (not with `skip_none` or `result`)",
                ));
            }
        }
        Ok(options)
    }
}

/// A flag takes no value.
fn flag(meta: &syn::meta::ParseNestedMeta<'_>, ident: &Ident) -> syn::Result<()> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            ident.span(),
            format!("`{ident}` is a flag and takes no value: write `{ident}` alone"),
        ));
    }
    Ok(())
}

/// A literal zero TTL would expire every entry at once. The Python original read `ttl=0` as
/// "forever"; here "forever" is no `ttl` at all, so say so instead of silently caching nothing.
fn reject_zero(expr: &Expr) -> syn::Result<()> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = expr
        && int.base10_parse::<u64>().ok() == Some(0)
    {
        return Err(syn::Error::new(
            int.span(),
            "a zero TTL expires every entry at once, so nothing would be cached; \
             for entries that never expire, leave `ttl` out",
        ));
    }
    Ok(())
}

/// `[a, b, self]`.
struct IdentList(Vec<Ident>);

impl Parse for IdentList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        bracketed!(content in input);
        let idents =
            Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
        Ok(IdentList(idents.into_iter().collect()))
    }
}
