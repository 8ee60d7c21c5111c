//! The tree an archive describes, built before anything is written: a trie of paths that
//! refuses duplicates, entries under a file or through a symlink, and symlinks that lead out of
//! the function's directory. Packing builds the same tree from the directory it walks.
//!
//! # Design
//!
//! Symlink targets are checked twice. Lexically from the link's own directory (the rule users
//! can reason about), and by resolving them the way the kernel will, following the archive's
//! other symlinks: with `up -> a/b/c` and `a/b/c/l -> ../../..` both lexically inside,
//! `up/../x` would still land outside at run time, because `..` applies to `a/b/c`, not to
//! `up`'s directory. Nodes are kept in a trie so building and resolving cost time linear in the
//! names, and a work budget bounds what hostile chains of symlinks can cost.

use std::collections::HashMap;

use crate::entry_path::{self, LinkProblem, RelPath};
use crate::error::EntryError;

/// How many symlinks one resolution may go through, as Linux's `MAXSYMLINKS`.
const MAX_LINK_EXPANSIONS: u32 = 40;
/// Path components the symlink check may visit across the whole tree.
const LINK_WORK_BUDGET: usize = 1 << 22;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    /// The normalised target.
    Symlink(String),
}

/// A node: an entry, or a directory only implied by the paths under it.
#[derive(Debug)]
pub(crate) enum NodeKind {
    Root,
    ImpliedDir,
    Entry(Kind),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    /// The caller's number for the entry this node is (or, for an implied directory, the first
    /// entry under it): an index into the archive, or into the walked files.
    pub(crate) entry: usize,
    name: String,
    parent: usize,
    children: HashMap<String, usize>,
}

/// Too many nodes, or an entry that doesn't fit.
#[derive(Debug)]
pub(crate) enum TreeError {
    TooManyEntries,
    Entry(EntryError),
}

#[derive(Debug)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    max_nodes: usize,
    /// Each entry's quoted name for error messages, by the caller's entry number.
    names: HashMap<usize, String>,
}

impl Tree {
    /// A tree of at most `max_nodes` files, directories (implied ones too) and symlinks.
    pub(crate) fn new(max_nodes: usize) -> Self {
        let root = Node {
            kind: NodeKind::Root,
            entry: usize::MAX,
            name: String::new(),
            parent: 0,
            children: HashMap::new(),
        };
        Self {
            nodes: vec![root],
            max_nodes,
            names: HashMap::new(),
        }
    }

    /// Nodes in creation order: every directory comes before what it holds.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes.iter().enumerate().skip(1)
    }

    fn name_of(&self, entry: usize) -> String {
        self.names.get(&entry).cloned().unwrap_or_default()
    }

    /// The node's path relative to the root, with `/` separators.
    pub(crate) fn path(&self, mut id: usize) -> String {
        let mut parts = Vec::new();
        while id != 0 {
            parts.push(self.nodes[id].name.as_str());
            id = self.nodes[id].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Adds entry number `entry` at `path` (not the root). `name` is how errors quote it.
    pub(crate) fn insert(
        &mut self,
        path: &RelPath,
        kind: Kind,
        entry: usize,
        name: &str,
    ) -> Result<usize, TreeError> {
        let name = entry_path::shown(name);
        self.names.insert(entry, name.clone());
        let components: Vec<&str> = path.components().collect();
        let mut current = 0;
        for (i, component) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            let Some(&child) = self.nodes[current].children.get(*component) else {
                if self.nodes.len() > self.max_nodes {
                    return Err(TreeError::TooManyEntries);
                }
                let kind = if last {
                    NodeKind::Entry(kind.clone())
                } else {
                    NodeKind::ImpliedDir
                };
                current = self.add(current, component, kind, entry);
                continue;
            };
            let existing = &self.nodes[child];
            let err = match (&existing.kind, last, &kind) {
                (NodeKind::Entry(Kind::Symlink(_)), false, _) => EntryError::ThroughSymlink {
                    entry: name,
                    link: self.name_of(existing.entry),
                },
                (NodeKind::Entry(Kind::File), false, _) => EntryError::UnderFile {
                    entry: name,
                    file: self.name_of(existing.entry),
                },
                (_, false, _) => {
                    current = child;
                    continue;
                }
                (NodeKind::ImpliedDir, true, Kind::Dir) => {
                    self.nodes[child].kind = NodeKind::Entry(Kind::Dir);
                    self.nodes[child].entry = entry;
                    return Ok(child);
                }
                (NodeKind::ImpliedDir, true, Kind::Symlink(_)) => EntryError::ThroughSymlink {
                    entry: self.name_of(existing.entry),
                    link: name,
                },
                (NodeKind::ImpliedDir, true, Kind::File) => EntryError::UnderFile {
                    entry: self.name_of(existing.entry),
                    file: name,
                },
                (_, true, _) => EntryError::Duplicate { entry: name },
            };
            return Err(TreeError::Entry(err));
        }
        Ok(current)
    }

    fn add(&mut self, parent: usize, name: &str, kind: NodeKind, entry: usize) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            kind,
            entry,
            name: name.to_owned(),
            parent,
            children: HashMap::new(),
        });
        self.nodes[parent].children.insert(name.to_owned(), id);
        id
    }

    /// Checks every symlink's target: lexically from the link's directory, then as the kernel
    /// will resolve it through the tree's other symlinks.
    pub(crate) fn check_symlinks(&self) -> Result<(), EntryError> {
        let mut budget = LINK_WORK_BUDGET;
        for (id, node) in self.nodes() {
            let NodeKind::Entry(Kind::Symlink(target)) = &node.kind else {
                continue;
            };
            let dir = self.ancestors(id);
            let lexical_dir: Vec<&str> = dir.iter().map(|&a| self.nodes[a].name.as_str()).collect();
            let mut physical_dir: Vec<Option<usize>> = dir.into_iter().map(Some).collect();
            let mut expansions = 0;
            entry_path::resolve_lexically(lexical_dir, target)
                .and_then(|_| self.follow(&mut physical_dir, target, &mut expansions, &mut budget))
                .map_err(|problem| EntryError::link(problem, &self.name_of(node.entry), target))?;
        }
        Ok(())
    }

    /// The node ids from the root's child down to `id`'s parent.
    fn ancestors(&self, id: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut current = self.nodes[id].parent;
        while current != 0 {
            out.push(current);
            current = self.nodes[current].parent;
        }
        out.reverse();
        out
    }

    /// Walks `target` from the directory `stack` (node ids; `None` once the path leaves the
    /// tree's known nodes), replacing each symlink met by its own target.
    fn follow(
        &self,
        stack: &mut Vec<Option<usize>>,
        target: &str,
        expansions: &mut u32,
        budget: &mut usize,
    ) -> Result<(), LinkProblem> {
        if target.starts_with('/') {
            return Err(LinkProblem::Outside);
        }
        for component in target.split('/') {
            *budget = budget.checked_sub(1).ok_or(LinkProblem::TooDeep)?;
            match component {
                "" | "." => {}
                ".." => {
                    stack.pop().ok_or(LinkProblem::Outside)?;
                }
                name => {
                    let dir = match stack.last() {
                        None => Some(0),
                        Some(dir) => *dir,
                    };
                    let child = dir.and_then(|d| self.nodes[d].children.get(name).copied());
                    match child.map(|c| &self.nodes[c].kind) {
                        Some(NodeKind::Entry(Kind::Symlink(inner))) => {
                            *expansions += 1;
                            if *expansions > MAX_LINK_EXPANSIONS {
                                return Err(LinkProblem::TooDeep);
                            }
                            self.follow(stack, inner, expansions, budget)?;
                        }
                        _ => stack.push(child),
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry_path::parse_entry_name;

    fn tree(entries: &[(&str, Kind)]) -> Result<Tree, String> {
        let mut tree = Tree::new(100);
        for (i, (name, kind)) in entries.iter().enumerate() {
            let path = parse_entry_name(name).map_err(|e| e.to_string())?;
            tree.insert(&path, kind.clone(), i, name).map_err(|e| match e {
                TreeError::TooManyEntries => "too many".to_owned(),
                TreeError::Entry(e) => e.to_string(),
            })?;
        }
        tree.check_symlinks().map_err(|e| e.to_string())?;
        Ok(tree)
    }

    fn link(target: &str) -> Kind {
        Kind::Symlink(target.to_owned())
    }

    #[test]
    fn implied_directories_come_before_their_contents() {
        let t = tree(&[("a/b/c", Kind::File), ("a/", Kind::Dir), ("a/b/d", Kind::File)]).unwrap();
        let paths: Vec<String> = t.nodes().map(|(id, _)| t.path(id)).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c", "a/b/d"]);
        assert!(matches!(t.nodes[1].kind, NodeKind::Entry(Kind::Dir)));
        assert!(matches!(t.nodes[2].kind, NodeKind::ImpliedDir));
    }

    #[test]
    fn refuses_duplicates_and_conflicts_in_either_order() {
        let dup = tree(&[("a", Kind::File), ("./a", Kind::File)]).unwrap_err();
        assert_eq!(dup, "`./a` appears more than once");
        let dup = tree(&[("a", Kind::File), ("a/", Kind::Dir)]).unwrap_err();
        assert_eq!(dup, "`a/` appears more than once");
        let through = tree(&[("lib", link("x")), ("lib/evil", Kind::File)]).unwrap_err();
        assert_eq!(through, "`lib/evil` would be written through the symlink `lib`");
        let through = tree(&[("lib/evil", Kind::File), ("lib", link("x"))]).unwrap_err();
        assert_eq!(through, "`lib/evil` would be written through the symlink `lib`");
        let under = tree(&[("a", Kind::File), ("a/b", Kind::File)]).unwrap_err();
        assert_eq!(under, "`a/b` is inside `a`, which is a file");
        let under = tree(&[("a/b", Kind::File), ("a", Kind::File)]).unwrap_err();
        assert_eq!(under, "`a/b` is inside `a`, which is a file");
    }

    #[test]
    fn counts_implied_directories_against_the_limit() {
        let mut t = Tree::new(2);
        let deep = parse_entry_name("a/b/c").unwrap();
        assert!(matches!(
            t.insert(&deep, Kind::File, 0, "a/b/c"),
            Err(TreeError::TooManyEntries)
        ));
    }

    #[test]
    fn accepts_symlinks_that_stay_inside() {
        tree(&[("lib/libx.so.1", Kind::File), ("lib/libx.so", link("libx.so.1"))]).unwrap();
        tree(&[("bin/tool", link("../lib/tool")), ("self", link("."))]).unwrap();
        tree(&[("d", link("a/b")), ("e", link("d/../x"))]).unwrap();
        // Dangling but inside: fine.
        tree(&[("a/l", link("../nowhere"))]).unwrap();
    }

    #[test]
    fn refuses_symlinks_that_leave_lexically() {
        let err = tree(&[("lib", link("/etc"))]).unwrap_err();
        assert_eq!(
            err,
            "`lib` is a symlink to `/etc`, outside the function's directory"
        );
        let err = tree(&[("a/l", link("../../x"))]).unwrap_err();
        assert_eq!(
            err,
            "`a/l` is a symlink to `../../x`, outside the function's directory"
        );
    }

    #[test]
    fn refuses_symlinks_that_leave_through_other_symlinks() {
        // `root -> ../..` from `a/b` is the function's root, so `root/..` is its parent.
        let err = tree(&[("a/b/root", link("../..")), ("escape", link("a/b/root/.."))]).unwrap_err();
        assert_eq!(
            err,
            "`escape` is a symlink to `a/b/root/..`, outside the function's directory"
        );
        // Lexically inside and outside disagree the other way too: refused as well.
        let err = tree(&[("d", link("a/b")), ("e", link("d/../.."))]).unwrap_err();
        assert!(err.contains("outside"), "{err}");
    }

    #[test]
    fn refuses_symlink_loops() {
        let err = tree(&[("a", link("b/x")), ("b", link("a/y"))]).unwrap_err();
        assert!(err.contains("loops or goes through too many symlinks"), "{err}");
    }
}
