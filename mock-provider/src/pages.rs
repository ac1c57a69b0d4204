//! The provider's HTML pages: templates compiled into the binary, filled in
//! one pass with HTML-escaped values.
//!
//! One pass matters: a value that itself contains `{{name}}` (a description
//! typed by a shopper) is copied as text, never expanded by a later
//! substitution.

const PAY: &str = include_str!("../assets/pay.html");
const RESULT: &str = include_str!("../assets/result.html");
const MESSAGE: &str = include_str!("../assets/message.html");
/// The provider's stylesheet, shared by the three pages.
pub const STYLESHEET: &str = include_str!("../assets/mockpay.css");

fn escape_html(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Replaces every `{{name}}` in `template` with the escaped value for `name`.
/// An unknown name is left as written, which a test of each page catches.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after_open = &rest[start + 2..];
        match after_open.find("}}") {
            Some(end) => {
                let name = &after_open[..end];
                match values.iter().find(|(key, _)| *key == name) {
                    Some((_, value)) => out.push_str(&escape_html(value)),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after_open[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn pay_page(
    order_id: &str,
    merchant: &str,
    description: &str,
    amount: &str,
    trace_parent: &str,
) -> String {
    let action = format!("/pay/{order_id}");
    render(
        PAY,
        &[
            ("order_id", order_id),
            ("merchant", merchant),
            ("description", description),
            ("amount", amount),
            ("action", &action),
            ("traceparent", trace_parent),
        ],
    )
}

pub fn result_page(outcome: &str, title: &str, message: &str) -> String {
    render(
        RESULT,
        &[("outcome", outcome), ("title", title), ("message", message)],
    )
}

pub fn message_page(title: &str, message: &str) -> String {
    render(MESSAGE, &[("title", title), ("message", message)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_never_expanded_twice() {
        let page = render(
            "<p>{{a}}</p><p>{{b}}</p>",
            &[("a", "{{b}} <script>"), ("b", "x & y")],
        );
        assert_eq!(page, "<p>{{b}} &lt;script&gt;</p><p>x &amp; y</p>");
    }

    #[test]
    fn every_placeholder_of_every_page_is_filled() {
        for page in [
            pay_page("id", "Shop", "Beans", "1.00 EUR", ""),
            result_page("succeeded", "Paid", "Done"),
            message_page("Gone", "Nothing here"),
        ] {
            assert!(!page.contains("{{"), "unfilled placeholder in:\n{page}");
        }
    }

    #[test]
    fn an_unclosed_brace_pair_is_kept_as_text() {
        assert_eq!(render("a {{b", &[("b", "x")]), "a {{b");
    }
}
