//! The arguments of `#[cache_memoize(...)]`, parsed into a model.
//!
//! Parsing never stops at the first mistake: a bad option is recorded in
//! [`Args::errors`] and parsing resumes after the next comma, so every
//! mistake is reported in one compile.

use proc_macro2::{Span, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitBool, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(prefix);
    syn::custom_keyword!(key);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(extra);
    syn::custom_keyword!(hit);
    syn::custom_keyword!(miss);
    syn::custom_keyword!(store_result);
    syn::custom_keyword!(cache_errors);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(alias);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(lock);
    syn::custom_keyword!(local);
    syn::custom_keyword!(early_refresh);
    syn::custom_keyword!(stale_while_revalidate);
    syn::custom_keyword!(stale_if_error);
    syn::custom_keyword!(tags);
}

/// Every option, in the order the docs list them.
const OPTIONS: &str = "ttl, prefix, key, skip(..), extra, hit, miss, store_result, \
                       cache_errors, cache_none, alias, cache, lock, local, early_refresh, \
                       stale_while_revalidate, stale_if_error, tags, crate";

/// One option as written: the span of its name (where errors about it
/// point) and its value.
pub(crate) struct Setting<T> {
    pub name: Span,
    pub value: T,
}

/// How long values live.
#[derive(Clone)]
pub(crate) enum Ttl {
    /// `ttl = 300`: whole seconds.
    Seconds(u64),
    /// `ttl = Duration::from_millis(1500)`: any `Duration` expression.
    Duration(Expr),
}

/// The parsed options; `None` means "not given".
#[derive(Default)]
pub(crate) struct Args {
    pub ttl: Option<Setting<Ttl>>,
    pub prefix: Option<Setting<LitStr>>,
    pub key: Option<Setting<Expr>>,
    pub skip: Option<Setting<Vec<Ident>>>,
    pub extra: Option<Setting<Expr>>,
    pub hit: Option<Setting<Expr>>,
    pub miss: Option<Setting<Expr>>,
    pub store_result: Option<Setting<LitBool>>,
    pub cache_errors: Option<Setting<LitBool>>,
    pub cache_none: Option<Setting<LitBool>>,
    pub alias: Option<Setting<LitStr>>,
    pub cache: Option<Setting<Expr>>,
    pub lock: Option<Setting<LitBool>>,
    /// `local = false`: never answered from the cache's local tier.
    pub local: Option<Setting<LitBool>>,
    /// XFetch's β: `early_refresh` (1) or `early_refresh = 2.0`.
    pub early_refresh: Option<Setting<f64>>,
    pub stale_while_revalidate: Option<Setting<Ttl>>,
    pub stale_if_error: Option<Setting<Ttl>>,
    /// `tags = [expr, …]`: expressions of the arguments, each `ToString`.
    pub tags: Option<Setting<Vec<Expr>>>,
    /// `crate = path`: where the `cache_memoize` crate is, when it is
    /// renamed or re-exported.
    pub krate: Option<Setting<Path>>,
    /// Mistakes found while parsing.
    pub errors: Vec<syn::Error>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            if let Err(e) = args.parse_option(input) {
                args.errors.push(e);
                skip_past_comma(input);
                continue;
            }
            if !input.is_empty() {
                if let Err(e) = input.parse::<Token![,]>() {
                    args.errors.push(syn::Error::new(
                        e.span(),
                        "expected `,` between options: `#[cache_memoize(ttl = 60, prefix = \"p\")]`",
                    ));
                    skip_past_comma(input);
                }
            }
        }
        Ok(args)
    }
}

impl Args {
    fn parse_option(&mut self, input: ParseStream) -> syn::Result<()> {
        // `crate` is a keyword, so not one of the `custom_keyword!`s.
        if input.peek(Token![crate]) {
            let name = input.parse::<Token![crate]>()?.span;
            let value = parse_crate(input, name)?;
            return set(&mut self.krate, "crate", name, value);
        }
        macro_rules! options {
            ($($kw:ident => $parse:expr,)*) => {$(
                if input.peek(kw::$kw) {
                    let name = input.parse::<kw::$kw>()?.span;
                    let value = $parse(input, name)?;
                    return set(&mut self.$kw, stringify!($kw), name, value);
                }
            )*};
        }
        options! {
            ttl => |i, n| parse_duration(i, n, "ttl"),
            prefix => |i, n| eq_then(i, n, "prefix", "prefix = \"shop::price\""),
            key => |i, n| eq_then(i, n, "key", "key = user.id"),
            skip => parse_skip,
            extra => |i, n| eq_then(i, n, "extra", "extra = SCHEMA_VERSION"),
            hit => |i, n| eq_then(i, n, "hit", "hit = on_hit"),
            miss => |i, n| eq_then(i, n, "miss", "miss = on_miss"),
            store_result => |i, n| parse_bool(i, n, "store_result = false"),
            cache_errors => |i, n| parse_bool(i, n, "cache_errors = true"),
            cache_none => |i, n| parse_bool(i, n, "cache_none = false"),
            alias => |i, n| eq_then(i, n, "alias", "alias = \"sessions\""),
            cache => |i, n| eq_then(i, n, "cache", "cache = self.cache"),
            lock => |i, n| parse_bool(i, n, "lock = true"),
            local => |i, n| parse_bool(i, n, "local = false"),
            early_refresh => parse_beta,
            stale_while_revalidate => |i, n| parse_duration(i, n, "stale_while_revalidate"),
            stale_if_error => |i, n| parse_duration(i, n, "stale_if_error"),
            tags => parse_tags,
        }
        Err(unknown_option(input))
    }
}

fn set<T>(slot: &mut Option<Setting<T>>, option: &str, name: Span, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            name,
            format!("`{option}` is given twice; keep one of them"),
        ));
    }
    *slot = Some(Setting { name, value });
    Ok(())
}

fn unknown_option(input: ParseStream) -> syn::Error {
    let Ok(name) = input.call(Ident::parse_any) else {
        return input.error(format!("expected an option; the options are: {OPTIONS}"));
    };
    let hint = match name.to_string().as_str() {
        "timeout" => " (django-cache-memoize's `timeout` is `ttl` here)",
        "cache_alias" => " (django-cache-memoize's `cache_alias` is `alias` here)",
        "cache_exceptions" => " (django-cache-memoize's `cache_exceptions` is `cache_errors` here)",
        "args_rewrite" | "key_generator_callable" => " (use `key = <expression>` instead)",
        "hit_callable" => " (django-cache-memoize's `hit_callable` is `hit` here)",
        "miss_callable" => " (django-cache-memoize's `miss_callable` is `miss` here)",
        _ => "",
    };
    syn::Error::new(
        name.span(),
        format!("unknown option `{name}`{hint}; the options are: {OPTIONS}"),
    )
}

/// `= <value>`, with an error at the option's name that shows the right
/// form when `=` is missing.
fn eq_then<T: Parse>(
    input: ParseStream,
    name: Span,
    option: &str,
    example: &str,
) -> syn::Result<T> {
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            name,
            format!("expected `=` after `{option}`: write `{example}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    input.parse::<T>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("{e}; `{option}` is written like `{example}`"),
        )
    })
}

fn parse_bool(input: ParseStream, name: Span, example: &str) -> syn::Result<LitBool> {
    let option = example.split(' ').next().unwrap_or(example);
    eq_then::<Expr>(input, name, option, example).and_then(|value| match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{option}` takes `true` or `false`: `{example}`"),
        )),
    })
}

/// `tags = [format!("user:{id}"), "catalog"]`.
fn parse_tags(input: ParseStream, name: Span) -> syn::Result<Vec<Expr>> {
    const EXAMPLE: &str = "tags = [format!(\"user:{user_id}\"), \"catalog\"]";
    let value: Expr = eq_then(input, name, "tags", EXAMPLE)?;
    match value {
        Expr::Array(array) if !array.elems.is_empty() => Ok(array.elems.into_iter().collect()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`tags` is a non-empty list of expressions in brackets: `{EXAMPLE}`"),
        )),
    }
}

/// `early_refresh` alone (β = 1) or `early_refresh = 2.0` (XFetch's β > 0).
fn parse_beta(input: ParseStream, name: Span) -> syn::Result<f64> {
    const FORM: &str = "`early_refresh` alone (β = 1) or `early_refresh = 2.0` \
                        (XFetch's β, a positive number: larger refreshes earlier)";
    if !input.peek(Token![=]) {
        return Ok(1.0);
    }
    let value: Expr = eq_then(input, name, "early_refresh", "early_refresh = 2.0")?;
    let beta = match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<u32>().ok().map(f64::from),
        _ => None,
    };
    match beta {
        Some(beta) if beta > 0.0 && beta.is_finite() => Ok(beta),
        _ => Err(syn::Error::new_spanned(
            &value,
            format!(
                "{FORM}, not `{}`",
                value.to_token_stream().to_string().replace("- ", "-")
            ),
        )),
    }
}

/// A duration option: whole seconds or a `std::time::Duration` expression.
fn parse_duration(input: ParseStream, name: Span, option: &str) -> syn::Result<Ttl> {
    let forms = format!(
        "`{option}` is a whole number of seconds (`{option} = 300`) or a \
         `std::time::Duration` (`{option} = Duration::from_millis(1500)`)"
    );
    let value: Expr = eq_then(input, name, option, &format!("{option} = 300"))?;
    let Expr::Lit(ExprLit { lit, .. }) = &value else {
        return Ok(Ttl::Duration(value));
    };
    let kind = match lit {
        Lit::Int(int) => {
            return match int.base10_parse::<u64>() {
                Ok(0) if option == "ttl" => Err(syn::Error::new_spanned(
                    int,
                    "`ttl = 0` would expire every value at once; \
                     leave `ttl` out to use the cache's default ttl",
                )),
                Ok(0) => Err(syn::Error::new_spanned(
                    int,
                    format!("`{option} = 0` is an empty window; leave `{option}` out instead"),
                )),
                Ok(seconds) if int.suffix().is_empty() || int.suffix() == "u64" => {
                    Ok(Ttl::Seconds(seconds))
                }
                _ => Err(syn::Error::new_spanned(
                    int,
                    format!("{forms}; write it without a type suffix"),
                )),
            }
        }
        Lit::Str(_) => "a string",
        Lit::Float(_) => "a fractional number (use `Duration::from_millis`)",
        Lit::Bool(_) => "a bool",
        _ => "this literal",
    };
    Err(syn::Error::new_spanned(lit, format!("{forms}, not {kind}")))
}

/// `crate = ::cache_memoize` or `crate = memo` (a path, the way the other
/// options name items); `crate = "memo"` (serde's and tokio's form) too.
fn parse_crate(input: ParseStream, name: Span) -> syn::Result<Path> {
    const FORM: &str = "`crate` is the path by which this code reaches the cache-memoize \
                        crate: `crate = ::cache_memoize`, or `crate = memo` after \
                        `use cache_memoize as memo;`";
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            name,
            format!("expected `=` after `crate`; {FORM}"),
        ));
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return lit.parse_with(Path::parse_mod_style).map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!("{} is not a path; {FORM}", lit.to_token_stream()),
            )
        });
    }
    let value: Expr = input.parse().map_err(|e| syn::Error::new(e.span(), FORM))?;
    match value {
        Expr::Path(syn::ExprPath {
            qself: None, path, ..
        }) if path.segments.iter().all(|s| s.arguments.is_none()) => Ok(path),
        other => Err(syn::Error::new_spanned(
            &other,
            format!(
                "`{}` is not a path; {FORM}",
                other.to_token_stream().to_string().replace(" :: ", "::")
            ),
        )),
    }
}

fn parse_skip(input: ParseStream, name: Span) -> syn::Result<Vec<Ident>> {
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            name,
            "`skip` lists argument names in parentheses: `skip(pool, logger)`",
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
    Ok(names.into_iter().collect())
}

/// Recovers from a bad option: drops tokens up to and including the next
/// top-level comma.
fn skip_past_comma(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            rest = next;
            if matches!(&tree, TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
        }
        Ok(((), rest))
    });
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::Args;

    fn parse(tokens: proc_macro2::TokenStream) -> Args {
        syn::parse2(tokens).expect("parsing collects errors, it does not fail")
    }

    fn messages(args: &Args) -> Vec<String> {
        args.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn crate_takes_a_path_or_a_string_holding_one() {
        for (tokens, path) in [
            (quote!(crate = ::cache_memoize), ":: cache_memoize"),
            (quote!(crate = memo), "memo"),
            (quote!(crate = crate::deps::memo), "crate :: deps :: memo"),
            (quote!(crate = "memo::inner"), "memo :: inner"),
        ] {
            let args = parse(tokens);
            assert!(args.errors.is_empty(), "{:?}", messages(&args));
            let krate = args.krate.expect("set").value;
            assert_eq!(krate.to_token_stream().to_string(), path);
        }
    }

    #[test]
    fn crate_refuses_what_is_not_a_path() {
        for (tokens, shown) in [
            (
                quote!(crate = "cache memoize"),
                "\"cache memoize\" is not a path",
            ),
            (quote!(crate = memo::<u8>), "`memo::< u8 >` is not a path"),
            (quote!(crate = 1), "`1` is not a path"),
        ] {
            let errors = messages(&parse(tokens));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with(shown), "{errors:?}");
            assert!(errors[0].contains("`crate = memo` after `use cache_memoize as memo;`"));
        }
        let errors = messages(&parse(quote!(crate, ttl = 1)));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("expected `=` after `crate`"));
        let errors = messages(&parse(quote!(crate = a, crate = b)));
        assert_eq!(errors, ["`crate` is given twice; keep one of them"]);
    }
}
