use braincache::cache;

#[cache(tll = 60)]
fn misspelled(x: u32) -> u32 {
    x
}

#[cache(ttl = 0)]
fn zero_ttl(x: u32) -> u32 {
    x
}

#[cache(ttl = 60, ttl_ms = 500)]
fn two_ttls(x: u32) -> u32 {
    x
}

#[cache(ignore = [client])]
fn ignores_a_missing_argument(x: u32) -> u32 {
    x
}

#[cache(skip_none)]
fn skip_none_on_result(x: u32) -> Result<u32, String> {
    Ok(x)
}

fn main() {
    // The functions are still there, so their callers only see the errors above.
    let _ = misspelled(1) + zero_ttl(1) + two_ttls(1) + ignores_a_missing_argument(1);
    let _ = skip_none_on_result(1);
}
