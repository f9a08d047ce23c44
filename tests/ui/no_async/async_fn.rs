use braincache::cache;

#[cache(ttl = 60)]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
