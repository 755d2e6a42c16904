//! `libacl_rt.so`: the simulated ACL runtime under the library name newer CANN recommends
//! (SEMANTICS.md §1, "installed under both of the names CANN uses").
//!
//! Every symbol comes from `ascendcl-sim`'s rlib: a cdylib exports the `#[no_mangle]` items of
//! the crates it links, so this crate only has to link it (the zlib-rs `libz-rs-sys-cdylib`
//! pattern). One build of the exports, two file names, the same symbols in both.
//!
//! A process should load one of the two names, as with CANN: each carries its own copy of the
//! simulator's per-process state, so a process that loaded both would attach to the namespace
//! twice and hold two bare tgids.

// Linked for its `#[no_mangle]` exports, which nothing here names.
#[expect(unused_extern_crates, reason = "linked for its exports")]
extern crate ascendcl;
