//! Unit tests of the suite's own machinery (the checks themselves run against backends).

use super::roles::{hex_decode, hex_encode};
use super::*;

/// A backend that exists only as a type, so that the list can be instantiated.
#[derive(Copy, Clone, Debug)]
pub struct Nothing;

mod nothing {
    //! Uninhabited handle types: nothing here is ever called.
    use super::Nothing;
    use crate::{
        BackendKind, DeviceId, DeviceRange, Download, EventFlags, ExportFlags, ExportKey,
        ImportFlags, MallocPolicy, MemExportFlags, MemImportFlags, MemInfo, NotifyFlags, NotifyId,
        Pid, Result, Timeout,
    };
    use std::time::Duration;

    #[derive(Clone, Debug)]
    pub enum Rt {}
    #[derive(Clone, Debug)]
    pub enum Dev {}
    #[derive(Debug)]
    pub enum Str {}
    #[derive(Debug)]
    pub enum Ntf {}
    #[derive(Debug)]
    pub enum Mem {}

    impl crate::Backend for Nothing {
        type Runtime = Rt;
        type Device = Dev;
        type Stream = Str;
        type Notify = Ntf;
        type Buffer = Mem;
        type MemExport = Mem;
        type MemImport = Mem;
        type Event = Mem;
    }

    impl crate::Buffer for Mem {
        type Backend = Nothing;
        fn device(&self) -> &Dev {
            match *self {}
        }
        fn len(&self) -> usize {
            match *self {}
        }
        fn as_range(&self) -> DeviceRange<'_> {
            match *self {}
        }
        fn export(&self, _: DeviceRange<'_>, _: MemExportFlags) -> Result<Mem> {
            match *self {}
        }
        fn free(self) -> Result<()> {
            match self {}
        }
    }

    impl crate::MemExport for Mem {
        type Backend = Nothing;
        fn key(&self) -> &ExportKey {
            match *self {}
        }
        fn len(&self) -> usize {
            match *self {}
        }
        fn set_import_pids(&self, _: &[Pid]) -> Result<()> {
            match *self {}
        }
        fn close(self) -> Result<()> {
            match self {}
        }
    }

    impl crate::MemImport for Mem {
        type Backend = Nothing;
        fn device(&self) -> &Dev {
            match *self {}
        }
        fn len(&self) -> usize {
            match *self {}
        }
        fn as_range(&self) -> DeviceRange<'_> {
            match *self {}
        }
        fn close(self) -> Result<()> {
            match self {}
        }
    }

    impl crate::Event for Mem {
        type Backend = Nothing;
        fn device(&self) -> &Dev {
            match *self {}
        }
        fn synchronize(&self) -> Result<()> {
            match *self {}
        }
        fn is_complete(&self) -> Result<bool> {
            match *self {}
        }
        fn elapsed_ms(&self, _: &Mem) -> Result<f32> {
            match *self {}
        }
        fn destroy(self) -> Result<()> {
            match self {}
        }
    }

    impl crate::Runtime for Rt {
        type Backend = Nothing;
        fn kind(&self) -> BackendKind {
            match *self {}
        }
        fn device_count(&self) -> Result<u32> {
            match *self {}
        }
        fn device(&self, _: DeviceId) -> Result<Dev> {
            match *self {}
        }
        fn bare_tgid(&self) -> Result<Pid> {
            match *self {}
        }
        fn can_access_peer(&self, _: DeviceId, _: DeviceId) -> Result<bool> {
            match *self {}
        }
        fn batch_reset(&self, _: &[&Ntf]) -> Result<()> {
            match *self {}
        }
    }

    impl crate::Device for Dev {
        type Backend = Nothing;
        fn id(&self) -> DeviceId {
            match *self {}
        }
        fn runtime(&self) -> &Rt {
            match *self {}
        }
        fn bare_tgid(&self) -> Result<Pid> {
            match *self {}
        }
        fn create_stream(&self) -> Result<Str> {
            match *self {}
        }
        fn default_stream(&self) -> Result<Str> {
            match *self {}
        }
        fn create_notify(&self, _: NotifyFlags) -> Result<Ntf> {
            match *self {}
        }
        fn import_notify(&self, _: &ExportKey, _: ImportFlags) -> Result<Ntf> {
            match *self {}
        }
        fn enable_peer_access(&self, _: DeviceId) -> Result<()> {
            match *self {}
        }
        fn create_context(&self) -> Result<Dev> {
            match *self {}
        }
        fn synchronize(&self) -> Result<()> {
            match *self {}
        }
        fn alloc(&self, _: usize, _: MallocPolicy) -> Result<Mem> {
            match *self {}
        }
        fn mem_info(&self) -> Result<MemInfo> {
            match *self {}
        }
        fn import_memory(&self, _: &ExportKey, _: usize, _: MemImportFlags) -> Result<Mem> {
            match *self {}
        }
        fn create_event(&self, _: EventFlags) -> Result<Mem> {
            match *self {}
        }
        fn copy_from_host(&self, _: DeviceRange<'_>, _: &[u8]) -> Result<()> {
            match *self {}
        }
        fn copy_to_host(&self, _: &mut [u8], _: DeviceRange<'_>) -> Result<()> {
            match *self {}
        }
        fn copy(&self, _: DeviceRange<'_>, _: DeviceRange<'_>) -> Result<()> {
            match *self {}
        }
        fn memset(&self, _: DeviceRange<'_>, _: u8) -> Result<()> {
            match *self {}
        }
    }

    #[async_trait::async_trait]
    impl crate::Stream for Str {
        type Backend = Nothing;
        fn device(&self) -> &Dev {
            match *self {}
        }
        fn record(&self, _: &Ntf) -> Result<()> {
            match *self {}
        }
        fn wait(&self, _: &Ntf, _: impl Into<Timeout>) -> Result<()> {
            match *self {}
        }
        fn synchronize(&self) -> Result<()> {
            match *self {}
        }
        fn synchronize_timeout(&self, _: Option<Duration>) -> Result<()> {
            match *self {}
        }
        async fn synchronize_async(&self) -> Result<()> {
            match *self {}
        }
        fn is_complete(&self) -> Result<bool> {
            match *self {}
        }
        fn copy(&self, _: DeviceRange<'_>, _: DeviceRange<'_>) -> Result<()> {
            match *self {}
        }
        fn copy_from_host(
            &self,
            _: DeviceRange<'_>,
            _: impl AsRef<[u8]> + Send + 'static,
        ) -> Result<()> {
            match *self {}
        }
        fn copy_to_host(&self, _: DeviceRange<'_>) -> Result<Download> {
            match *self {}
        }
        fn memset(&self, _: DeviceRange<'_>, _: u8) -> Result<()> {
            match *self {}
        }
        fn launch_host_fn(&self, _: impl FnOnce() + Send + 'static) -> Result<()> {
            match *self {}
        }
        fn record_event(&self, _: &Mem) -> Result<()> {
            match *self {}
        }
        fn wait_event(&self, _: &Mem) -> Result<()> {
            match *self {}
        }
        fn reset_event(&self, _: &Mem) -> Result<()> {
            match *self {}
        }
        fn destroy(self) -> Result<()> {
            match self {}
        }
    }

    impl crate::Notify for Ntf {
        type Backend = Nothing;
        fn device(&self) -> &Dev {
            match *self {}
        }
        fn id(&self) -> Result<NotifyId> {
            match *self {}
        }
        fn export(&self, _: ExportFlags) -> Result<ExportKey> {
            match *self {}
        }
        fn set_import_pid(&self, _: Pid) -> Result<()> {
            match *self {}
        }
        fn destroy(self) -> Result<()> {
            match self {}
        }
    }
}

#[test]
fn the_list_is_consistent() {
    let all = checks::<Nothing>();
    let mut names: Vec<_> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "a check is listed twice");
    for c in &all {
        let rule = c.name.split('_').next().unwrap_or("");
        assert!(
            crate::Rule::ALL
                .iter()
                .any(|r| r.as_str() == rule.to_uppercase()),
            "{}: the name does not start with its rule",
            c.name
        );
        assert_eq!(
            c.kind() == Kind::Multi,
            c.needs(Capability::MultiProcess),
            "{}: a check with peers needs MultiProcess, and only such a check",
            c.name
        );
        let mut needs = c.needs.to_vec();
        needs.sort_unstable();
        needs.dedup();
        assert_eq!(needs.len(), c.needs.len(), "{}: a capability twice", c.name);
    }
    assert!(check::<Nothing>("r12_virtualized").is_some_and(|c| c.needs(Capability::Virtualized)));
    assert!(check::<Nothing>("no_such_check").is_none());
}

#[test]
fn accessors_select_by_capability() {
    let single = single_checks::<Nothing>();
    assert!(single.iter().all(|(n, _)| *n != "r12_virtualized"));
    assert!(single.iter().any(|(n, _)| *n == "r1_records_merge"));
    let plain = multi_checks::<Nothing>(&[Capability::MultiProcess]);
    assert!(plain.iter().any(|(n, _)| *n == "r7_peer_access"));
    assert!(
        plain
            .iter()
            .all(|(n, _)| *n != "r9_killed_holder_is_reclaimed"),
        "a ProcessDeath check without the capability"
    );
    let everything = multi_checks::<Nothing>(Capability::ALL);
    assert!(everything.len() > plain.len());
    assert!(multi_checks::<Nothing>(&[]).is_empty());
    let all = checks::<Nothing>();
    let multi = all.iter().filter(|c| c.kind() == Kind::Multi).count();
    assert_eq!(everything.len(), multi);
    let plain_single = all
        .iter()
        .filter(|c| c.kind() == Kind::Single && c.needs.is_empty())
        .count();
    assert_eq!(single.len(), plain_single);
}

#[test]
fn skip_reasons_name_what_is_missing() {
    let c = check::<Nothing>("r9_killed_holder_is_reclaimed").expect("listed");
    assert_eq!(c.skip_reason(Capability::ALL), None);
    let why = c
        .skip_reason(&[Capability::MultiProcess])
        .expect("ProcessDeath is missing");
    assert!(why.contains("ProcessDeath") && why.contains("R9"), "{why}");
    assert!(!why.contains("MultiProcess"), "{why}");
    assert_eq!(c.missing(&[]).len(), 2);
    let single = check::<Nothing>("r1_records_merge").expect("listed");
    assert_eq!(single.skip_reason(&[]), None);
    assert!(format!("{single:?}").contains("r1_records_merge"));
}

#[test]
fn memory_and_task_checks_need_their_capabilities() {
    let all = checks::<Nothing>();
    for c in &all {
        let rule = c.name.split('_').next().unwrap_or("");
        if rule.starts_with('m') {
            assert!(
                c.needs(Capability::Memory),
                "{}: a §5 check without Memory",
                c.name
            );
        }
        if ["h1", "e1", "c1", "s1"].contains(&rule) {
            assert!(
                c.needs(Capability::StreamTasks),
                "{}: a §6 check without StreamTasks",
                c.name
            );
        }
        if rule.starts_with('r') {
            assert!(
                !c.needs(Capability::Memory) && !c.needs(Capability::StreamTasks),
                "{}: a notify check that needs §5/§6",
                c.name
            );
        }
        if c.needs(Capability::ServedHazards) || c.needs(Capability::StrictHazards) {
            assert!(
                c.needs(Capability::Memory),
                "{}: a hazard check without Memory",
                c.name
            );
        }
    }
    for rule in ["m1", "m2", "m3", "m4", "m5", "m6", "h1", "e1", "c1", "s1"] {
        assert!(
            all.iter().any(|c| c.name.starts_with(&format!("{rule}_"))),
            "no check of {rule}"
        );
    }
    let notify_only = [
        Capability::MultiProcess,
        Capability::Virtualized,
        Capability::StartTimeHook,
    ];
    let c = check::<Nothing>("m6_strict_hazards_refused").expect("listed");
    let why = c.skip_reason(&notify_only).expect("skipped without memory");
    assert!(
        why.contains("Memory") && why.contains("StrictHazards"),
        "{why}"
    );
    assert_eq!(c.skip_reason(Capability::ALL), None);
    assert!(
        single_checks::<Nothing>()
            .iter()
            .all(|(n, _)| !n.starts_with('m'))
    );
}

#[test]
fn memory_hex_round_trip() {
    use super::roles::{bytes_of_hex, hex_of_bytes, policy_of};
    for bytes in [&[][..], &[0u8], &[0xff, 0x00, 0x7f], &[1, 2, 3, 4, 5]] {
        assert_eq!(bytes_of_hex(&hex_of_bytes(bytes)).as_deref(), Some(bytes));
    }
    assert_eq!(hex_of_bytes(&[0xab, 0x01]), "ab01");
    assert_eq!(bytes_of_hex("abc"), None);
    assert_eq!(bytes_of_hex("zz"), None);
    for bits in 0..8 {
        assert_eq!(policy_of(bits).map(crate::MallocPolicy::bits), Some(bits));
    }
    assert_eq!(policy_of(8), None);
}

#[test]
fn hex_round_trip() {
    for text in ["", "a", "ans1-00 ff", " lead and trail ", "~!@"] {
        assert_eq!(hex_decode(&hex_encode(text)).as_deref(), Some(text));
    }
    assert_eq!(hex_encode("A "), "4120");
    assert_eq!(hex_decode("4"), None);
    assert_eq!(hex_decode("zz"), None);
    assert_eq!(hex_decode("ff"), None, "not UTF-8");
}

#[test]
fn assert_code_checks_code_reason_and_rule() {
    let refused: Result<()> = Err(crate::err!(R7: RT_DRV_INTERNAL_ERROR, "pid 1 is not listed"));
    assert_code(refused, AclError::RT_DRV_INTERNAL_ERROR, "import");
    let wrong = std::panic::catch_unwind(|| {
        assert_code(
            Err::<(), _>(crate::err!(R7: RT_DRV_INTERNAL_ERROR, "x")),
            AclError::RT_INTERNAL_ERROR,
            "import",
        );
    });
    assert!(wrong.is_err(), "a wrong code passed");
    let untagged = std::panic::catch_unwind(|| {
        let e = crate::Error::Acl(Box::new(crate::AclFailure {
            code: AclError::RT_PARAM_INVALID,
            rule: Some(crate::Rule::R6),
            reason: "no rule prefix".into(),
        }));
        assert_code(Err::<(), _>(e), AclError::RT_PARAM_INVALID, "set pid");
    });
    assert!(untagged.is_err(), "a reason without its rule passed");
    let success = std::panic::catch_unwind(|| {
        assert_code(Ok(()), AclError::RT_PARAM_INVALID, "set pid");
    });
    assert!(success.is_err(), "a success passed");
}
