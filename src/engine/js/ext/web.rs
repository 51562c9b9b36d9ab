//! Web platform helpers: UTF-8 decoding, URL parsing, clocks and
//! randomness.

use deno_core::{OpState, op2};

use super::CallState;

#[op2]
#[string]
pub(super) fn op_isoexec_utf8_decode(
    #[buffer] bytes: &[u8],
    fatal: bool,
    strip_bom: bool,
) -> Option<String> {
    let bytes = if strip_bom {
        bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
    } else {
        bytes
    };
    if fatal {
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    } else {
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// The parts of a URL in the order `runtime_js/05_url.js` reads them.
fn url_parts(url: &deno_core::url::Url) -> Vec<String> {
    use deno_core::url::quirks;
    vec![
        quirks::href(url).to_string(),
        quirks::origin(url),
        quirks::protocol(url).to_string(),
        quirks::username(url).to_string(),
        quirks::password(url).to_string(),
        quirks::host(url).to_string(),
        quirks::hostname(url).to_string(),
        quirks::port(url).to_string(),
        quirks::pathname(url).to_string(),
        quirks::search(url).to_string(),
        quirks::hash(url).to_string(),
    ]
}

#[op2]
#[serde]
pub(super) fn op_isoexec_url_parse(
    #[string] href: &str,
    #[string] base: Option<String>,
) -> Option<Vec<String>> {
    let url = match base {
        None => deno_core::url::Url::parse(href).ok()?,
        Some(base) => deno_core::url::Url::parse(&base).ok()?.join(href).ok()?,
    };
    Some(url_parts(&url))
}

#[op2]
#[serde]
pub(super) fn op_isoexec_url_set(
    #[string] href: &str,
    which: u32,
    #[string] value: &str,
) -> Option<Vec<String>> {
    use deno_core::url::quirks;
    let mut url = deno_core::url::Url::parse(href).ok()?;
    let ok = match which {
        0 => quirks::set_href(&mut url, value).is_ok(),
        1 => quirks::set_protocol(&mut url, value).is_ok(),
        2 => quirks::set_username(&mut url, value).is_ok(),
        3 => quirks::set_password(&mut url, value).is_ok(),
        4 => quirks::set_host(&mut url, value).is_ok(),
        5 => quirks::set_hostname(&mut url, value).is_ok(),
        6 => quirks::set_port(&mut url, value).is_ok(),
        7 => {
            quirks::set_pathname(&mut url, value);
            true
        }
        8 => {
            quirks::set_search(&mut url, value);
            true
        }
        9 => {
            quirks::set_hash(&mut url, value);
            true
        }
        _ => false,
    };
    ok.then(|| url_parts(&url))
}

#[op2(fast)]
pub(super) fn op_isoexec_now(state: &mut OpState) -> f64 {
    CallState::of(state).map_or(0.0, |c| c.started.elapsed().as_secs_f64() * 1000.0)
}

#[op2(fast)]
pub(super) fn op_isoexec_random_fill(#[buffer] buf: &mut [u8]) {
    fill_random(buf);
}

/// Fills `buf` from the kernel's CSPRNG.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // getrandom(2) cannot fail on Linux ≥ 3.17 once the pool is
            // seeded; fall back to a time-seeded generator rather than panic.
            let mut x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
            for b in rest.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            return;
        }
    }
}

#[op2(fast)]
pub(super) fn op_isoexec_time_origin(state: &mut OpState) -> f64 {
    CallState::of_mut(state).map_or(0.0, CallState::time_origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_fill_fills() {
        let mut a = [0u8; 64];
        fill_random(&mut a);
        assert!(a.iter().any(|&b| b != 0));
    }
}
