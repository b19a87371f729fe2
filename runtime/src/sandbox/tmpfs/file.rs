//! A `/tmp` file's contents, charged to the instance's memory budget as they
//! grow, and the cursors that streams read, write and append through.

use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;

use crate::sandbox::memory::MemoryBudget;
use crate::sandbox::tmpfs::tree::{NODE_BYTES, Times};

/// A regular file; its bytes are charged to `budget` while it exists.
pub struct File {
    pub ino: u64,
    state: Mutex<FileState>,
    budget: Arc<MemoryBudget>,
}

pub struct FileState {
    pub data: Vec<u8>,
    /// Bytes charged to the budget for `data`'s capacity.
    charged: usize,
    pub times: Times,
}

impl File {
    /// An empty file, its [`NODE_BYTES`] charged to `budget`.
    pub fn new(ino: u64, budget: Arc<MemoryBudget>) -> Result<Self, ErrorCode> {
        if !budget.reserve(NODE_BYTES) {
            return Err(ErrorCode::InsufficientSpace);
        }
        Ok(File {
            ino,
            state: Mutex::new(FileState {
                data: Vec::new(),
                charged: 0,
                times: Times::now(),
            }),
            budget,
        })
    }

    pub fn state(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `len` bytes from `offset`; empty at or past the end.
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut state = self.state();
        state.times.accessed();
        let start = usize::try_from(offset).map_or(state.data.len(), |o| o.min(state.data.len()));
        let end = start.saturating_add(len).min(state.data.len());
        state.data[start..end].to_vec()
    }

    /// Writes `bytes` at `offset` (`None`: at the end), zero-filling any gap;
    /// returns the offset after the write.
    pub fn write_at(&self, offset: Option<u64>, bytes: &[u8]) -> Result<u64, ErrorCode> {
        let mut state = self.state();
        let start = match offset {
            Some(o) => usize::try_from(o).map_err(|_| ErrorCode::FileTooLarge)?,
            None => state.data.len(),
        };
        if bytes.is_empty() {
            return Ok(start as u64);
        }
        let end = start
            .checked_add(bytes.len())
            .ok_or(ErrorCode::FileTooLarge)?;
        if end > state.data.len() {
            self.grow_to(&mut state, end)?;
            state.data.resize(end, 0);
        }
        state.data[start..end].copy_from_slice(bytes);
        state.times.modified();
        Ok(end as u64)
    }

    /// Truncates or zero-extends the file to `size` bytes.
    pub fn set_size(&self, size: u64) -> Result<(), ErrorCode> {
        let size = usize::try_from(size).map_err(|_| ErrorCode::FileTooLarge)?;
        let mut state = self.state();
        if size > state.data.len() {
            self.grow_to(&mut state, size)?;
        } else {
            state.data.truncate(size);
            state.data.shrink_to_fit();
            let freed = state.charged - state.data.capacity().min(state.charged);
            state.charged -= freed;
            self.budget.release(freed);
        }
        state.data.resize(size, 0);
        state.times.modified();
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.state().data.len() as u64
    }

    /// Makes room for `needed` bytes, charging the budget: doubling, as a
    /// `Vec` would, when the budget allows it, else exactly `needed`;
    /// `insufficient-space` when not even that fits.
    fn grow_to(&self, state: &mut FileState, needed: usize) -> Result<(), ErrorCode> {
        if needed <= state.charged {
            return Ok(());
        }
        let doubled = needed.max(state.charged.saturating_mul(2)).max(64);
        let target = if self.budget.reserve(doubled - state.charged) {
            doubled
        } else if self.budget.reserve(needed - state.charged) {
            needed
        } else {
            return Err(ErrorCode::InsufficientSpace);
        };
        let len = state.data.len();
        if state.data.try_reserve_exact(target - len).is_err() {
            self.budget.release(target - state.charged);
            return Err(ErrorCode::InsufficientMemory);
        }
        state.charged = target;
        Ok(())
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.budget.release(NODE_BYTES + self.state().charged);
    }
}

/// Where a `/tmp` stream reads or writes: from a position that moves with
/// it, or (`position` `None`) always at the end, appending.
pub struct Cursor {
    file: Arc<File>,
    position: Option<u64>,
}

impl Cursor {
    pub fn new(file: Arc<File>, position: Option<u64>) -> Self {
        Cursor { file, position }
    }

    /// Up to `len` bytes from the position, which moves past them; empty at
    /// the end of the file.
    pub fn read(&mut self, len: usize) -> Vec<u8> {
        let position = self.position.unwrap_or_else(|| self.file.len());
        let bytes = self.file.read_at(position, len);
        self.position = Some(position + bytes.len() as u64);
        bytes
    }

    /// Writes all of `bytes` at the position (or the end), past which it moves.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ErrorCode> {
        let end = self.file.write_at(self.position, bytes)?;
        if self.position.is_some() {
            self.position = Some(end);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_charge_the_budget_and_fail_past_it() {
        let budget = MemoryBudget::new(NODE_BYTES as u64 + 1000);
        let file = File::new(1, budget.clone()).unwrap();
        assert_eq!(file.write_at(Some(0), b"hello").unwrap(), 5);
        assert_eq!(file.write_at(None, b" world").unwrap(), 11);
        assert_eq!(file.read_at(6, 100), b"world");
        assert!(budget.files() >= NODE_BYTES + 11);
        // A gap is zero-filled, and charged.
        file.write_at(Some(20), b"!").unwrap();
        assert_eq!(file.read_at(10, 100), b"d\0\0\0\0\0\0\0\0\0!");
        assert_eq!(
            file.write_at(Some(995), b"too far"),
            Err(ErrorCode::InsufficientSpace)
        );
        assert_eq!(file.len(), 21);
        file.set_size(3).unwrap();
        assert_eq!(file.read_at(0, 100), b"hel");
        assert!(budget.files() <= NODE_BYTES + 64);
        drop(file);
        assert_eq!(budget.files(), 0);
    }

    #[test]
    fn growth_falls_back_to_exact_when_doubling_does_not_fit() {
        let budget = MemoryBudget::new(NODE_BYTES as u64 + 150);
        let file = File::new(1, budget.clone()).unwrap();
        file.write_at(None, &[1; 100]).unwrap();
        file.write_at(None, &[2; 50]).unwrap();
        assert_eq!(budget.files(), NODE_BYTES + 150);
        assert_eq!(file.write_at(None, &[3]), Err(ErrorCode::InsufficientSpace));
    }

    #[test]
    fn cursors_move_with_what_they_read_and_write() {
        let budget = MemoryBudget::new(NODE_BYTES as u64 + 100);
        let file = Arc::new(File::new(1, budget).unwrap());
        let mut w = Cursor::new(file.clone(), Some(0));
        w.write(b"abc").unwrap();
        w.write(b"def").unwrap();
        let mut append = Cursor::new(file.clone(), None);
        append.write(b"g").unwrap();
        let mut r = Cursor::new(file.clone(), Some(2));
        assert_eq!(r.read(3), b"cde");
        assert_eq!(r.read(3), b"fg");
        assert!(r.read(3).is_empty());
        assert_eq!(w.write(&[0; 200]), Err(ErrorCode::InsufficientSpace));
    }
}
