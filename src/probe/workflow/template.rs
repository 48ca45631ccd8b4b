//! `${name}` templates in a step's URL, headers and body, and the run's variables they
//! draw on: config vars (literal or secret), values extracted by earlier steps, and the
//! built-ins `run` (an id unique to the run) and `part` (an upload's part number).
//! Hand-written: the whole language is `${name}`, a few dozen lines.

use std::collections::HashMap;

/// A parsed template: literal text and variable names, in order.
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(String),
}

pub fn valid_var(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl Template {
    /// `$${` writes a literal `${`.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("$${") {
                text.push_str("${");
                rest = r;
            } else if let Some(r) = after.strip_prefix("${") {
                let end = r.find('}').ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
                let name = &r[..end];
                if !valid_var(name) {
                    return Err(format!("{name:?} is not a variable name (A-Z a-z 0-9 _)"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Var(name.to_string()));
                rest = &r[end + 1..];
            } else {
                text.push('$');
                rest = &after[1..];
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The text with every variable filled in; whether a secret went into it.
    pub fn render(&self, vars: &Vars) -> Result<Rendered, String> {
        let mut out = Rendered::default();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.text.push_str(t),
                Piece::Var(name) => match vars.get(name) {
                    Some(Value::Text(v)) => {
                        out.text.push_str(&v.text);
                        out.secret |= v.secret;
                    }
                    Some(Value::List(_)) => {
                        return Err(format!("${{{name}}} holds a list; name it in an upload's `urls`"));
                    }
                    None => {
                        return Err(format!(
                            "${{{name}}} has no value (the step that extracts it did not run)"
                        ));
                    }
                },
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Default)]
pub struct Rendered {
    pub text: String,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub enum Value {
    Text(Text),
    /// A JSON array extracted whole (an init step's signed part URLs).
    List(Vec<String>),
}

/// One run's variables, and every secret value among them (to scrub from what the run
/// reports).
#[derive(Debug, Default, Clone)]
pub struct Vars {
    values: HashMap<String, Value>,
    secrets: Vec<String>,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub fn set(&mut self, name: &str, text: String, secret: bool) {
        if secret && text.len() >= 4 {
            self.secrets.push(text.clone());
        }
        self.values.insert(name.to_string(), Value::Text(Text { text, secret }));
    }

    pub fn set_list(&mut self, name: &str, list: Vec<String>) {
        self.values.insert(name.to_string(), Value::List(list));
    }

    /// `s` with every secret value replaced by `<redacted>`.
    pub fn scrub(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }

    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_variables_and_flag_secrets() {
        let t = Template::parse("/r/${id}/parts/${part}?sig=${token}&cost=$5&lit=$${x}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["id", "part", "token"]);
        let mut v = Vars::default();
        v.set("id", "abc".into(), false);
        v.set("part", "3".into(), false);
        assert!(t.render(&v).unwrap_err().contains("${token}"));
        v.set("token", "s3cr3t".into(), true);
        let r = t.render(&v).unwrap();
        assert_eq!(r.text, "/r/abc/parts/3?sig=s3cr3t&cost=$5&lit=${x}");
        assert!(r.secret);
        assert_eq!(v.scrub("error at sig=s3cr3t"), "error at sig=<redacted>");
        assert!(Template::parse("${unclosed").is_err());
        assert!(Template::parse("${bad-name}").is_err());
        v.set_list("urls", vec!["a".into()]);
        assert!(Template::parse("${urls}").unwrap().render(&v).is_err());
    }
}
