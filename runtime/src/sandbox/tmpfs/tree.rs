//! The in-memory tree behind `/tmp`: directories of named files and
//! directories, path lookup confined to the directory it starts from, and
//! the operations wasi:filesystem asks of it. No symlinks, no hard links.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, DescriptorType, DirectoryEntry, ErrorCode, OpenFlags,
};

use crate::sandbox::memory::MemoryBudget;
use crate::sandbox::tmpfs::file::File;

/// What each file or directory is charged beyond a file's contents: an
/// allowance for its node, its name and its directory entry.
pub const NODE_BYTES: usize = 512;

/// The longest name a directory entry may have, as on Linux.
const MAX_NAME: usize = 255;

#[derive(Clone, Copy, Debug)]
pub struct Times {
    pub access: SystemTime,
    pub modify: SystemTime,
    pub change: SystemTime,
}

impl Times {
    pub fn now() -> Self {
        let now = SystemTime::now();
        Times {
            access: now,
            modify: now,
            change: now,
        }
    }

    pub fn accessed(&mut self) {
        self.access = SystemTime::now();
    }

    pub fn modified(&mut self) {
        self.modify = SystemTime::now();
        self.change = self.modify;
    }
}

/// A file or a directory.
#[derive(Clone)]
pub enum Node {
    File(Arc<File>),
    Dir(Arc<Dir>),
}

impl Node {
    pub fn ino(&self) -> u64 {
        match self {
            Node::File(f) => f.ino,
            Node::Dir(d) => d.ino,
        }
    }

    pub fn kind(&self) -> DescriptorType {
        match self {
            Node::File(_) => DescriptorType::RegularFile,
            Node::Dir(_) => DescriptorType::Directory,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Node::File(f) => f.len(),
            Node::Dir(d) => d.state().entries.len() as u64,
        }
    }

    pub fn times(&self) -> Times {
        match self {
            Node::File(f) => f.state().times,
            Node::Dir(d) => d.state().times,
        }
    }

    /// Sets the access and modification times that are given; the status
    /// change time becomes now.
    pub fn set_times(&self, access: Option<SystemTime>, modify: Option<SystemTime>) {
        let apply = |times: &mut Times| {
            times.access = access.unwrap_or(times.access);
            times.modify = modify.unwrap_or(times.modify);
            times.change = SystemTime::now();
        };
        match self {
            Node::File(f) => apply(&mut f.state().times),
            Node::Dir(d) => apply(&mut d.state().times),
        }
    }

    pub fn same(&self, other: &Node) -> bool {
        self.ino() == other.ino()
    }

    fn is_empty_dir(&self) -> bool {
        matches!(self, Node::Dir(d) if d.state().entries.is_empty())
    }
}

pub struct Dir {
    pub ino: u64,
    state: Mutex<DirState>,
    budget: Arc<MemoryBudget>,
}

pub struct DirState {
    pub entries: BTreeMap<String, Node>,
    pub times: Times,
}

impl Dir {
    /// An empty directory, its [`NODE_BYTES`] charged to `budget`.
    fn new(ino: u64, budget: Arc<MemoryBudget>) -> Result<Arc<Self>, ErrorCode> {
        if !budget.reserve(NODE_BYTES) {
            return Err(ErrorCode::InsufficientSpace);
        }
        Ok(Arc::new(Dir {
            ino,
            state: Mutex::new(DirState {
                entries: BTreeMap::new(),
                times: Times::now(),
            }),
            budget,
        }))
    }

    pub fn state(&self) -> MutexGuard<'_, DirState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, name: &str) -> Option<Node> {
        self.state().entries.get(name).cloned()
    }

    /// The directory's entries, in name order.
    pub fn list(&self) -> Vec<DirectoryEntry> {
        let mut state = self.state();
        state.times.accessed();
        state
            .entries
            .iter()
            .map(|(name, node)| DirectoryEntry {
                type_: node.kind(),
                name: name.clone(),
            })
            .collect()
    }

    /// Whether `other` is this directory or lies anywhere below it.
    fn contains(self: &Arc<Self>, other: &Arc<Dir>) -> bool {
        Arc::ptr_eq(self, other)
            || self.state().entries.values().any(|node| match node {
                Node::Dir(d) => d.contains(other),
                Node::File(_) => false,
            })
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        self.budget.release(NODE_BYTES);
    }
}

/// A path resolved up to its last component: the directory holding it and
/// its name; `name` is `None` when the path names a directory itself
/// (`.`, `a/..`).
pub struct Lookup {
    pub dir: Arc<Dir>,
    pub name: Option<String>,
}

impl Lookup {
    pub fn node(&self) -> Option<Node> {
        match &self.name {
            Some(name) => self.dir.get(name),
            None => Some(Node::Dir(self.dir.clone())),
        }
    }

    fn name(&self) -> Result<&str, ErrorCode> {
        self.name.as_deref().ok_or(ErrorCode::Invalid)
    }
}

/// Resolves `path` from `start`. Absolute paths and `..` above `start` are
/// refused, as wasmtime-wasi refuses them for real directories.
pub fn lookup(start: &Arc<Dir>, path: &str) -> Result<Lookup, ErrorCode> {
    if path.is_empty() {
        return Err(ErrorCode::NoEntry);
    }
    if path.starts_with('/') {
        return Err(ErrorCode::NotPermitted);
    }
    let mut stack = vec![start.clone()];
    let mut pending: Option<&str> = None;
    for part in path.split('/') {
        if let Some(name) = pending.take() {
            let top = stack.last().expect("the stack starts non-empty");
            match top.get(name) {
                Some(Node::Dir(d)) => stack.push(d),
                Some(Node::File(_)) => return Err(ErrorCode::NotDirectory),
                None => return Err(ErrorCode::NoEntry),
            }
        }
        match part {
            "" | "." => {}
            ".." => {
                if stack.len() == 1 {
                    return Err(ErrorCode::NotPermitted);
                }
                stack.pop();
            }
            name if name.len() > MAX_NAME => return Err(ErrorCode::NameTooLong),
            name => pending = Some(name),
        }
    }
    Ok(Lookup {
        dir: stack.pop().expect("the stack starts non-empty"),
        name: pending.map(str::to_owned),
    })
}

/// One instance's `/tmp`: a fresh empty tree, charged to the instance's
/// memory budget, dropped with the instance.
pub struct Tree {
    pub root: Arc<Dir>,
    budget: Arc<MemoryBudget>,
    next_ino: AtomicU64,
}

impl Tree {
    pub fn new(budget: Arc<MemoryBudget>) -> Result<Self, ErrorCode> {
        Ok(Tree {
            root: Dir::new(1, budget.clone())?,
            budget,
            next_ino: AtomicU64::new(2),
        })
    }

    fn next_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    fn new_file(&self) -> Result<Arc<File>, ErrorCode> {
        Ok(Arc::new(File::new(self.next_ino(), self.budget.clone())?))
    }

    /// `open-at`: finds, or creates, the node `path` names.
    pub fn open(
        &self,
        base: &Arc<Dir>,
        path: &str,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Node, ErrorCode> {
        let at = lookup(base, path)?;
        let node = match at.node() {
            Some(_) if oflags.contains(OpenFlags::CREATE | OpenFlags::EXCLUSIVE) => {
                return Err(ErrorCode::Exist);
            }
            Some(node) => node,
            None if oflags.contains(OpenFlags::CREATE) => {
                if oflags.contains(OpenFlags::DIRECTORY) {
                    return Err(ErrorCode::Invalid);
                }
                let file = Node::File(self.new_file()?);
                self.insert(&at.dir, at.name()?, file.clone());
                file
            }
            None => return Err(ErrorCode::NoEntry),
        };
        match &node {
            Node::File(_) if oflags.contains(OpenFlags::DIRECTORY) => Err(ErrorCode::NotDirectory),
            Node::Dir(_)
                if flags.contains(DescriptorFlags::WRITE)
                    || oflags.contains(OpenFlags::TRUNCATE) =>
            {
                Err(ErrorCode::IsDirectory)
            }
            Node::File(f) if oflags.contains(OpenFlags::TRUNCATE) => {
                f.set_size(0)?;
                Ok(node)
            }
            _ => Ok(node),
        }
    }

    fn insert(&self, dir: &Dir, name: &str, node: Node) {
        let mut state = dir.state();
        state.entries.insert(name.to_owned(), node);
        state.times.modified();
    }

    pub fn create_dir(&self, base: &Arc<Dir>, path: &str) -> Result<(), ErrorCode> {
        let at = lookup(base, path)?;
        if at.node().is_some() {
            return Err(ErrorCode::Exist);
        }
        let dir = Node::Dir(Dir::new(self.next_ino(), self.budget.clone())?);
        self.insert(&at.dir, at.name()?, dir);
        Ok(())
    }

    /// `remove-directory-at` (`dir`) or `unlink-file-at` (`!dir`).
    pub fn remove(&self, base: &Arc<Dir>, path: &str, dir: bool) -> Result<(), ErrorCode> {
        let at = lookup(base, path)?;
        let name = at.name()?;
        let node = at.dir.get(name).ok_or(ErrorCode::NoEntry)?;
        match node {
            Node::File(_) if dir => return Err(ErrorCode::NotDirectory),
            Node::Dir(_) if !dir => return Err(ErrorCode::IsDirectory),
            Node::Dir(_) if !node.is_empty_dir() => return Err(ErrorCode::NotEmpty),
            _ => {}
        }
        let mut state = at.dir.state();
        state.entries.remove(name);
        state.times.modified();
        Ok(())
    }

    /// `rename-at`: moves a node anywhere within the tree, replacing a file
    /// or an empty directory at the destination, as POSIX `rename` does.
    pub fn rename(
        &self,
        old_base: &Arc<Dir>,
        old_path: &str,
        new_base: &Arc<Dir>,
        new_path: &str,
    ) -> Result<(), ErrorCode> {
        let from = lookup(old_base, old_path)?;
        let to = lookup(new_base, new_path)?;
        let (old_name, new_name) = (from.name()?, to.name()?);
        let node = from.dir.get(old_name).ok_or(ErrorCode::NoEntry)?;
        if let Some(existing) = to.dir.get(new_name) {
            if existing.same(&node) {
                return Ok(());
            }
            match (&node, &existing) {
                (Node::File(_), Node::Dir(_)) => return Err(ErrorCode::IsDirectory),
                (Node::Dir(_), Node::File(_)) => return Err(ErrorCode::NotDirectory),
                (Node::Dir(_), Node::Dir(_)) if !existing.is_empty_dir() => {
                    return Err(ErrorCode::NotEmpty);
                }
                _ => {}
            }
        }
        if let Node::Dir(moved) = &node
            && moved.contains(&to.dir)
        {
            return Err(ErrorCode::Invalid);
        }
        let removed = {
            let mut state = from.dir.state();
            state.times.modified();
            state.entries.remove(old_name)
        };
        self.insert(&to.dir, new_name, node);
        // A replaced node is dropped here, outside any lock.
        drop(removed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(limit: u64) -> (Tree, Arc<MemoryBudget>) {
        let budget = MemoryBudget::new(limit);
        (Tree::new(budget.clone()).unwrap(), budget)
    }

    fn create(tree: &Tree, path: &str, bytes: &[u8]) -> Result<(), ErrorCode> {
        let node = tree.open(
            &tree.root,
            path,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )?;
        let Node::File(f) = node else {
            panic!("{path} is not a file")
        };
        f.write_at(Some(0), bytes).map(|_| ())
    }

    fn read(tree: &Tree, path: &str) -> Result<Vec<u8>, ErrorCode> {
        match tree.open(&tree.root, path, OpenFlags::empty(), DescriptorFlags::READ)? {
            Node::File(f) => Ok(f.read_at(0, usize::MAX)),
            Node::Dir(_) => Err(ErrorCode::IsDirectory),
        }
    }

    fn names(dir: &Dir) -> Vec<String> {
        dir.list().into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn files_are_created_read_listed_renamed_and_removed() {
        let (tree, budget) = tree(1 << 20);
        tree.create_dir(&tree.root, "sub").unwrap();
        create(&tree, "sub/a.txt", b"alpha").unwrap();
        create(&tree, "b.txt", b"beta").unwrap();
        assert_eq!(read(&tree, "sub/./a.txt").unwrap(), b"alpha");
        assert_eq!(read(&tree, "sub/../b.txt").unwrap(), b"beta");
        assert_eq!(names(&tree.root), ["b.txt", "sub"]);

        tree.rename(&tree.root, "sub/a.txt", &tree.root, "c.txt")
            .unwrap();
        assert_eq!(read(&tree, "c.txt").unwrap(), b"alpha");
        assert_eq!(read(&tree, "sub/a.txt"), Err(ErrorCode::NoEntry));
        // Renaming over a file replaces it, and frees its bytes.
        let before = budget.files();
        tree.rename(&tree.root, "c.txt", &tree.root, "b.txt")
            .unwrap();
        assert_eq!(read(&tree, "b.txt").unwrap(), b"alpha");
        assert!(budget.files() < before);

        assert_eq!(
            tree.remove(&tree.root, "b.txt", true),
            Err(ErrorCode::NotDirectory)
        );
        tree.remove(&tree.root, "b.txt", false).unwrap();
        assert_eq!(
            tree.remove(&tree.root, "sub", false),
            Err(ErrorCode::IsDirectory)
        );
        tree.remove(&tree.root, "sub", true).unwrap();
        assert!(names(&tree.root).is_empty());
        assert_eq!(budget.files(), NODE_BYTES, "only the root is left");
    }

    #[test]
    fn open_flags_are_honoured() {
        let (tree, _) = tree(1 << 20);
        create(&tree, "f", b"data").unwrap();
        let excl = OpenFlags::CREATE | OpenFlags::EXCLUSIVE;
        let write = DescriptorFlags::WRITE;
        assert!(matches!(
            tree.open(&tree.root, "f", excl, write),
            Err(ErrorCode::Exist)
        ));
        assert!(matches!(
            tree.open(&tree.root, "g", OpenFlags::empty(), write),
            Err(ErrorCode::NoEntry)
        ));
        assert!(matches!(
            tree.open(&tree.root, "f", OpenFlags::DIRECTORY, DescriptorFlags::READ),
            Err(ErrorCode::NotDirectory)
        ));
        assert!(matches!(
            tree.open(&tree.root, ".", OpenFlags::empty(), write),
            Err(ErrorCode::IsDirectory)
        ));
        tree.open(&tree.root, "f", OpenFlags::TRUNCATE, write)
            .unwrap();
        assert_eq!(read(&tree, "f").unwrap(), b"");
        assert_eq!(tree.create_dir(&tree.root, "f"), Err(ErrorCode::Exist));
    }

    #[test]
    fn paths_stay_inside_the_tree() {
        let (tree, _) = tree(1 << 20);
        tree.create_dir(&tree.root, "d").unwrap();
        let Some(Node::Dir(d)) = lookup(&tree.root, "d").unwrap().node() else {
            panic!("d is a directory")
        };
        assert!(matches!(
            lookup(&tree.root, ".."),
            Err(ErrorCode::NotPermitted)
        ));
        assert!(matches!(lookup(&d, "../x"), Err(ErrorCode::NotPermitted)));
        assert!(matches!(
            lookup(&tree.root, "/etc"),
            Err(ErrorCode::NotPermitted)
        ));
        assert!(matches!(
            lookup(&tree.root, "nope/x"),
            Err(ErrorCode::NoEntry)
        ));
        assert!(matches!(
            lookup(&tree.root, &"n".repeat(300)),
            Err(ErrorCode::NameTooLong)
        ));
        assert!(lookup(&tree.root, "d/..").unwrap().name.is_none());
    }

    #[test]
    fn directories_move_but_never_into_themselves() {
        let (tree, _) = tree(1 << 20);
        tree.create_dir(&tree.root, "a").unwrap();
        tree.create_dir(&tree.root, "a/b").unwrap();
        create(&tree, "a/b/f", b"x").unwrap();
        assert_eq!(
            tree.rename(&tree.root, "a", &tree.root, "a/b/c"),
            Err(ErrorCode::Invalid)
        );
        tree.create_dir(&tree.root, "full").unwrap();
        create(&tree, "full/f", b"y").unwrap();
        assert_eq!(
            tree.rename(&tree.root, "a", &tree.root, "full"),
            Err(ErrorCode::NotEmpty)
        );
        assert_eq!(
            tree.remove(&tree.root, "full", true),
            Err(ErrorCode::NotEmpty)
        );
        tree.rename(&tree.root, "a/b", &tree.root, "moved").unwrap();
        assert_eq!(read(&tree, "moved/f").unwrap(), b"x");
    }

    #[test]
    fn nodes_count_against_the_budget() {
        let (tree, budget) = tree((NODE_BYTES * 3) as u64);
        tree.create_dir(&tree.root, "one").unwrap();
        create(&tree, "two", b"").unwrap();
        assert_eq!(
            tree.create_dir(&tree.root, "three"),
            Err(ErrorCode::InsufficientSpace)
        );
        assert_eq!(
            create(&tree, "two", b"x"),
            Err(ErrorCode::InsufficientSpace)
        );
        drop(tree);
        assert_eq!(budget.files(), 0);
    }
}
