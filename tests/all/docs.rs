//! The README documents the inputs the code defines, and nothing else.

use cutover::inputs::INPUTS;

/// The inputs table as the README must show it.
fn expected_table() -> String {
    let mut table = String::from("| input | default | what it does |\n|---|---|---|\n");
    for input in INPUTS {
        let default = input.default.map(|d| format!("`{d}`")).unwrap_or_default();
        table.push_str(&format!("| `{}` | {default} | {} |\n", input.name(), input.description));
    }
    table
}

#[test]
fn readme_inputs_table_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let start = readme.find("<!-- inputs:start -->\n").expect("inputs:start marker") + "<!-- inputs:start -->\n".len();
    let end = readme.find("<!-- inputs:end -->").expect("inputs:end marker");
    assert_eq!(&readme[start..end], expected_table(), "README inputs table; expected:\n{}", expected_table());
}
