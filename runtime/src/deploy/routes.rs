//! Path-prefix routing: a route matches on whole segments (`/hello` serves
//! `/hello` and `/hello/x`, never `/hellox`), and the longest route wins.

use std::sync::Arc;

use crate::config::normalize_route;

/// An immutable routing snapshot; deploys build a new one and swap it in,
/// so a request sees either the old table or the new one, never a mix.
pub struct RouteTable<T> {
    /// Sorted longest route first.
    entries: Vec<(String, Arc<T>)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable {
            entries: Vec::new(),
        }
    }
}

fn matches(route: &str, path: &str) -> bool {
    route == "/"
        || path
            .strip_prefix(route)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl<T> RouteTable<T> {
    pub fn new(routes: impl IntoIterator<Item = (String, Arc<T>)>) -> Self {
        let mut entries: Vec<_> = routes
            .into_iter()
            .map(|(r, t)| (normalize_route(&r).to_string(), t))
            .collect();
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        RouteTable { entries }
    }

    pub fn lookup(&self, path: &str) -> Option<&Arc<T>> {
        self.entries
            .iter()
            .find(|(route, _)| matches(route, path))
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        RouteTable::new([
            ("/".to_string(), Arc::new("root")),
            ("/hello".to_string(), Arc::new("hello")),
            ("/hello/world/".to_string(), Arc::new("world")),
        ])
    }

    #[test]
    fn whole_segments_longest_wins() {
        let t = table();
        let get = |p| **t.lookup(p).unwrap();
        assert_eq!(get("/hello"), "hello");
        assert_eq!(get("/hello/"), "hello");
        assert_eq!(get("/hello/x"), "hello");
        assert_eq!(get("/hellox"), "root");
        assert_eq!(get("/hello/world"), "world");
        assert_eq!(get("/hello/world/deep"), "world");
        assert_eq!(get("/hello/worlds"), "hello");
        assert_eq!(get("/"), "root");
    }

    #[test]
    fn no_root_means_no_match() {
        let t = RouteTable::new([("/api".to_string(), Arc::new(1))]);
        assert!(t.lookup("/other").is_none());
        assert!(t.lookup("/ap").is_none());
    }
}
