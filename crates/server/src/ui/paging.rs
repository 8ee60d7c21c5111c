//! Paging of the dashboard's long lists, one way for every page: a list the page holds
//! whole is cut to `?page=N` ([`Pager::cut`], [`PER_PAGE`] rows a page); a list the
//! store reads by cursor (objects, KV keys) carries its cursor in `?after=…`
//! ([`Pager::cursor`]). `templates/ui/pager.html` draws the links.

use serde::Deserialize;

/// Rows a page shows.
pub(crate) const PER_PAGE: usize = 100;

/// The paging part of a page's query string.
#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    /// 1-based; past the end shows the last page.
    pub page: Option<usize>,
    /// For a list read by cursor: where the page starts.
    pub after: Option<String>,
}

/// Where a page sits in its list, and the links to the pages around it.
pub(crate) struct Pager {
    /// What the page shows, as "101–200 of 1000" (empty when it shows everything).
    pub summary: String,
    pub first: Option<String>,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// Cuts `rows` to page `page` (1-based); `base` is the page's address, with any
    /// query of its own (`/ui/queues` or `/ui/kv/x?prefix=a`).
    pub(crate) fn cut<T>(mut rows: Vec<T>, page: Option<usize>, base: &str) -> (Vec<T>, Pager) {
        let total = rows.len();
        let pages = total.div_ceil(PER_PAGE).max(1);
        let page = page.unwrap_or(1).clamp(1, pages);
        let start = (page - 1) * PER_PAGE;
        let end = (start + PER_PAGE).min(total);
        let shown: Vec<T> = rows.drain(start..end).collect();
        let link = |n: usize| format!("{base}{}page={n}", separator(base));
        let pager = Pager {
            summary: if pages == 1 {
                String::new()
            } else {
                format!("{}–{end} of {total}", start + 1)
            },
            first: (page > 2).then(|| link(1)),
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        };
        (shown, pager)
    }

    /// For a list read by cursor: `next` is the store's cursor after this page (none
    /// at the end); `after` is this page's own (none on the first page).
    pub(crate) fn cursor(next: Option<&str>, after: Option<&str>, base: &str) -> Pager {
        let sep = separator(base);
        let with = |cursor: &str| {
            let query = serde_urlencoded::to_string([("after", cursor)]).unwrap_or_default();
            format!("{base}{sep}{query}")
        };
        Pager {
            summary: String::new(),
            first: after.map(|_| base.to_owned()),
            prev: None,
            next: next.map(with),
        }
    }

    /// Whether there is anything to draw.
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.prev.is_none() && self.next.is_none()
    }
}

fn separator(base: &str) -> char {
    if base.contains('?') { '&' } else { '?' }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_a_list_into_pages_with_links_either_side() {
        let rows: Vec<usize> = (0..250).collect();
        let (shown, pager) = Pager::cut(rows.clone(), Some(2), "/ui/functions");
        assert_eq!(shown, (100..200).collect::<Vec<_>>());
        assert_eq!(pager.summary, "101–200 of 250");
        assert_eq!(pager.prev.as_deref(), Some("/ui/functions?page=1"));
        assert_eq!(pager.next.as_deref(), Some("/ui/functions?page=3"));
        assert_eq!(pager.first, None);

        let (shown, pager) = Pager::cut(rows.clone(), Some(9), "/ui/kv/s?prefix=a");
        assert_eq!(shown.len(), 50, "past the end is the last page");
        assert_eq!(pager.next, None);
        assert_eq!(pager.first.as_deref(), Some("/ui/kv/s?prefix=a&page=1"));

        let (shown, pager) = Pager::cut(vec![1, 2], None, "/ui/queues");
        assert_eq!(shown, vec![1, 2]);
        assert!(pager.is_empty() && pager.summary.is_empty());
    }

    #[test]
    fn a_cursor_list_links_to_its_next_page_and_back_to_the_first() {
        let pager = Pager::cursor(Some("k/é 1"), None, "/ui/kv/s?prefix=k");
        assert_eq!(
            pager.next.as_deref(),
            Some("/ui/kv/s?prefix=k&after=k%2F%C3%A9+1")
        );
        assert_eq!(pager.first, None);
        let pager = Pager::cursor(None, Some("x"), "/ui/kv/s");
        assert_eq!(pager.next, None);
        assert_eq!(pager.first.as_deref(), Some("/ui/kv/s"));
    }
}
