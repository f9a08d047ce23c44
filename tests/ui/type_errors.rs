use braincache::cache;

struct Connection;

// Deserialize but not Serialize. (A type that is not `Deserialize` gets the same error; its
// list of other `Deserialize` types depends on the enabled features, so the test avoids it.)
#[derive(serde::Deserialize)]
struct Report(u32);

#[cache(ttl = 60)]
fn lookup(conn: &Connection, id: u32) -> String {
    let _ = conn;
    id.to_string()
}

#[cache]
fn report(id: u32) -> Report {
    Report(id)
}

#[cache]
fn fetch(id: u32) -> Result<Report, String> {
    Ok(Report(id))
}

struct Pool;

impl Pool {
    #[cache]
    fn size(&self) -> usize {
        1
    }
}

fn main() {}
