//! Text cutover did not write (a lock's owner and run URL, pointer notes, anything read back from
//! the store or AWS), made safe to print: a control character is shown escaped, so stored text can
//! never start a line of its own in a CI log (a GitHub `::error::` command, a TeamCity message).

/// `text` with each control character (newline, carriage return, escape, ...) and Unicode line or
/// paragraph separator written as its escape (`\n`, `\u{1b}`).
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                c.escape_default().to_string()
            } else {
                c.into()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_never_starts_a_line_of_its_own() {
        let hostile = "x\n::error::pwned\r\n##teamcity[x]\u{1b}[2K\u{2028}y";
        let shown = printable(hostile);
        assert!(!shown.chars().any(|c| c.is_control() || c == '\u{2028}'), "{shown}");
        assert_eq!(shown, r"x\n::error::pwned\r\n##teamcity[x]\u{1b}[2K\u{2028}y");
        assert_eq!(printable("https://ci/run/1 (déjà)"), "https://ci/run/1 (déjà)");
    }
}
