//! A user's passwd entry: the operator's login name for what the steering
//! commands record, and ferry's own name, home and shell for `local` steps.

use std::ffi::CStr;
use std::path::PathBuf;

/// The fields of a passwd entry ferry reads.
pub struct Entry {
    pub name: String,
    pub home: PathBuf,
    pub shell: String,
}

/// `uid`'s passwd entry, if it has one.
pub fn entry(uid: libc::uid_t) -> Option<Entry> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to memory we own, `buf.len()` is its size,
    // and the strings read below live in `buf`, which outlives them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    let text = |p: *const libc::c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: getpwuid_r succeeded, so each field is a
            // NUL-terminated string in `buf`.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    Some(Entry {
        name: text(pwd.pw_name),
        home: PathBuf::from(text(pwd.pw_dir)),
        shell: text(pwd.pw_shell),
    })
}
