use braincache::cache;

#[cache]
fn generic<T: serde::Serialize>(x: T) -> u32 {
    let _ = x;
    1
}

#[cache]
fn impl_trait(x: impl serde::Serialize) -> u32 {
    let _ = x;
    1
}

#[cache]
fn fills(out: &mut Vec<u32>) -> usize {
    out.push(1);
    out.len()
}

#[cache]
fn no_value(x: u32) {
    let _ = x;
}

#[cache]
fn destructures((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
