//! The small XML dialect of the official account's callbacks: a `<xml>` element whose children are
//! `<Name>value</Name>` fields (CDATA or escaped text), a few of them nested.

use super::oa_crypto::malformed;
use crate::Result;

/// Nesting allowed in a message body; WeChat's deepest (`SendPicsInfo/PicList/item/PicMd5Sum`)
/// is 4 below `<xml>`.
const MAX_XML_DEPTH: usize = 8;

/// The children of a WeChat `<xml>` document: flat `<Name>value</Name>` elements, values in
/// CDATA or escaped text, some elements nested (`<Video>`, `<ScanCodeInfo>`). Only the grammar
/// WeChat emits is accepted: no attributes, comments, processing instructions (beyond a leading
/// `<?xml …?>`) or DOCTYPE, so there is nothing to expand and nothing to resolve. Tags are found
/// by walking the structure, never by searching the text, so a user's message content (inside
/// CDATA) can never pose as a field.
#[derive(Debug)]
pub(super) struct Xml {
    children: Vec<(String, Node)>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Element,
}

impl Xml {
    pub(super) fn parse(input: &str) -> Result<Self> {
        let mut p = Parser { rest: input };
        p.skip_ws();
        if p.rest.starts_with("<?xml") {
            let end = p
                .rest
                .find("?>")
                .ok_or(malformed("unterminated XML declaration"))?;
            p.rest = p.rest.get(end + 2..).unwrap_or_default();
            p.skip_ws();
        }
        let (root, empty) = p.open_tag()?;
        if root != "xml" {
            return Err(malformed("root element is not <xml>"));
        }
        let children = if empty {
            Vec::new()
        } else {
            match p.children("xml", 1)? {
                Content::Elements(children) => children,
                Content::Text(text) if text.is_empty() => Vec::new(),
                Content::Text(_) => return Err(malformed("text directly inside <xml>")),
            }
        };
        p.skip_ws();
        if !p.rest.is_empty() {
            return Err(malformed("content after </xml>"));
        }
        Ok(Self { children })
    }

    /// The text of the one top-level element `name`; `None` if absent. Refuses a duplicated or
    /// nested element rather than guessing which is meant.
    pub(super) fn text(&self, name: &str) -> Result<Option<&str>> {
        let mut found = self.children.iter().filter(|(n, _)| n == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(malformed("duplicated element"));
        }
        match first {
            None => Ok(None),
            Some((_, Node::Text(text))) => Ok(Some(text)),
            Some((_, Node::Element)) => {
                Err(malformed("element has children where text is expected"))
            }
        }
    }
}

enum Content {
    Text(String),
    Elements(Vec<(String, Node)>),
}

struct Parser<'a> {
    rest: &'a str,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, prefix: &str) -> bool {
        match self.rest.strip_prefix(prefix) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// `<Name>` → (`Name`, false); `<Name/>` → (`Name`, true).
    fn open_tag(&mut self) -> Result<(&'a str, bool)> {
        if !self.eat("<") {
            return Err(malformed("expected an element"));
        }
        let end = self.rest.find('>').ok_or(malformed("unterminated tag"))?;
        let tag = self.rest.get(..end).unwrap_or_default();
        let (name, empty) = match tag.strip_suffix('/') {
            Some(name) => (name, true),
            None => (tag, false),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(malformed("unsupported tag"));
        }
        self.rest = self.rest.get(end + 1..).unwrap_or_default();
        Ok((name, empty))
    }

    /// Everything up to and including `</name>`: either text (CDATA sections and escaped text,
    /// concatenated; whitespace around them dropped) or child elements, never both.
    fn children(&mut self, name: &str, depth: usize) -> Result<Content> {
        if depth > MAX_XML_DEPTH {
            return Err(malformed("elements nested too deeply"));
        }
        let close = format!("</{name}>");
        let mut text = String::new();
        let mut elements = Vec::new();
        loop {
            if self.eat(&close) {
                break;
            }
            if self.eat("<![CDATA[") {
                let end = self
                    .rest
                    .find("]]>")
                    .ok_or(malformed("unterminated CDATA"))?;
                text.push_str(self.rest.get(..end).unwrap_or_default());
                self.rest = self.rest.get(end + 3..).unwrap_or_default();
            } else if self.rest.starts_with("</") {
                return Err(malformed("mismatched closing tag"));
            } else if self.rest.starts_with('<') {
                let (child, empty) = self.open_tag()?;
                let node = if empty {
                    Node::Text(String::new())
                } else {
                    match self.children(child, depth + 1)? {
                        Content::Text(t) => Node::Text(t),
                        Content::Elements(_) => Node::Element,
                    }
                };
                elements.push((child.to_owned(), node));
            } else if self.rest.is_empty() {
                return Err(malformed("unterminated element"));
            } else {
                let end = self.rest.find('<').unwrap_or(self.rest.len());
                let raw = self.rest.get(..end).unwrap_or_default();
                self.rest = self.rest.get(end..).unwrap_or_default();
                unescape_into(raw.trim(), &mut text)?;
            }
        }
        match (elements.is_empty(), text.is_empty()) {
            (true, _) => Ok(Content::Text(text)),
            (false, true) => Ok(Content::Elements(elements)),
            (false, false) => Err(malformed("mixed text and elements")),
        }
    }
}

fn unescape_into(raw: &str, out: &mut String) -> Result<()> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after.find(';').ok_or(malformed("unterminated entity"))?;
        let entity = after.get(..semi).unwrap_or_default();
        let ch = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or(malformed("unknown entity"))?
            }
        };
        out.push(ch);
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(())
}
