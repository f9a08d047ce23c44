use braincache::cache;

#[derive(serde::Serialize)]
struct Query(u32);

impl Query {
    #[cache]
    fn run(self) -> u32 {
        self.0
    }

    #[cache]
    fn run_boxed(self: Box<Self>) -> u32 {
        self.0
    }

    #[cache]
    fn bump(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

fn main() {}
