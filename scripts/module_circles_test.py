#!/usr/bin/env python3
"""Tests of module_circles.py on tiny crates written to a temporary directory."""

import contextlib
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import module_circles  # noqa: E402


def crate(files):
    """A temporary source directory holding `files` ({relative path: text})."""
    tmp = tempfile.TemporaryDirectory()
    for name, text in {"lib.rs": "pub mod a;\npub mod b;\n", **files}.items():
        path = Path(tmp.name, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp


def check(files):
    """The script's exit code and output on a crate of `files`."""
    with crate(files) as src, contextlib.redirect_stdout(io.StringIO()) as out:
        code = module_circles.main(["module_circles.py", src])
    return code, out.getvalue()


class ModuleCircles(unittest.TestCase):
    def test_a_circle_fails_and_is_printed_with_its_lines(self):
        code, out = check({"a.rs": "use crate::b::B;\npub struct A;\n", "b.rs": "\n\nfn f() -> crate::a::A { todo!() }\n"})
        self.assertEqual(code, 1)
        self.assertIn("import circle among {a, b}: a -> b -> a", out)
        self.assertRegex(out, r"a -> b  \(.*a\.rs:1\)")
        self.assertRegex(out, r"b -> a  \(.*b\.rs:3\)")

    def test_one_way_imports_pass(self):
        self.assertEqual(check({"a.rs": "use crate::b::B;\n", "b.rs": "pub struct B;\n"}), (0, ""))

    def test_a_longer_circle_through_submodules_and_groups(self):
        code, out = check(
            {
                "a.rs": "use crate::{b::{self, B}, d};\n",
                "b/mod.rs": "mod inner;\n",
                "b/inner.rs": "use super::super::c::C;\n",
                "c.rs": "pub(crate) fn f() { crate :: a::g(); }\n",
                "d.rs": "",
            }
        )
        self.assertEqual(code, 1)
        self.assertIn("import circle among {a, b, c}: a -> b -> c -> a", out)

    def test_tests_comments_and_strings_make_no_edge(self):
        b = """
            //! See [`crate::a::A`].
            /* crate::a /* nested */ crate::a */
            const S: &str = "crate::a::A";
            const R: &str = r#"use crate::a;"#;
            const C: char = '"'; fn keep<'a>(x: &'a str) -> &'a str { x }
            #[cfg(test)]
            mod tests {
                use crate::a::A;
                fn f() { let _ = "}"; }
            }
            #[cfg(test)]
            use crate::a::A;
        """
        self.assertEqual(check({"a.rs": "use crate::b;\n", "b.rs": b}), (0, ""))
        self.assertEqual(check({"a.rs": "use crate::b;\n", "b.rs": b + "use crate::a;\n"})[0], 1)


if __name__ == "__main__":
    unittest.main()
