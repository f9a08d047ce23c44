//! The README's first example is what a new user pastes (issue 13, item 9): a complete
//! `main.rs` without rustdoc's hidden `# ` lines, after the `[dependencies]` line it needs. (It
//! also runs, as every README example does, as a doctest: `src/lib.rs` includes the README.)

#[test]
fn r13_readme_starts_with_a_dependency_line_and_a_complete_program() {
    let readme = include_str!("../README.md");
    let toml = readme.find("```toml\n[dependencies]\nbraincache = ");
    let rust = readme.find("```rust\n").expect("a Rust example");
    assert!(
        toml.is_some_and(|t| t < rust),
        "the README shows `[dependencies]` before its first example"
    );
    let body = &readme[rust + "```rust\n".len()..];
    let block = &body[..body.find("```").expect("the example ends")];
    for line in block.lines() {
        assert!(
            !(line == "#" || line.starts_with("# ")),
            "a hidden line, which a user who copies the example does not see: {line:?}"
        );
    }
    assert!(block.contains("fn main()"), "a complete program:\n{block}");
    assert!(block.contains("use braincache::"), "{block}");
}
