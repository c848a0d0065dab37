//! `[[target]]`: what ferry owns and how it deploys it, with its steps.

use super::*;

pub(super) fn is_repository(r: &str) -> bool {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(r.split_once('/'), Some((o, n)) if ok_part(o) && ok_part(n))
}

impl<'a> Checker<'a> {
    pub(super) fn targets(&mut self) -> Option<Vec<Target>> {
        let Some(value) = self.value_at(&[Seg::Key("target")]) else {
            self.problem(
                &[Seg::Key("target")],
                "no [[target]]: ferry would accept no deployment",
            );
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(&[Seg::Key("target")], "expected [[target]] tables");
            return None;
        };
        let mut targets = Vec::new();
        let mut all_ok = true;
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = [Seg::Key("target"), Seg::Index(i)];
            self.step_keys(&path);
            let raw: Option<RawTarget> = self.table_at(&path, item.span());
            match raw.and_then(|r| self.target(i, r)) {
                Some(t) => {
                    if !seen.insert((t.repository.clone(), t.environment.clone(), t.task.clone())) {
                        self.warning(
                            &path,
                            format!(
                                "{} {} (task {}) is owned by an earlier target; this one never runs",
                                t.repository, t.environment, t.task
                            ),
                        );
                    }
                    targets.push(t)
                }
                None => all_ok = false,
            }
        }
        if all_ok {
            self.promotions_follow_targets(&targets);
        }
        all_ok.then_some(targets)
    }

    /// Reports unknown keys inside `[[target.steps]]`, the target's other
    /// lists and its tables (`[target.auto_deploy]`), all of them.
    pub(super) fn step_keys(&mut self, target: &[Seg]) {
        for (name, table_keys) in raw::sub_tables() {
            let mut path = target.to_vec();
            path.push(Seg::Key(name));
            if let Some(DeValue::Table(t)) = self.value_at(&path).map(|v| v.get_ref()) {
                self.known_keys(t, table_keys, &path);
            }
        }
        for (list, item_keys) in raw::item_lists() {
            let mut path = target.to_vec();
            path.push(Seg::Key(list));
            let Some(DeValue::Array(steps)) = self.value_at(&path).map(|v| v.get_ref()) else {
                continue;
            };
            for (j, s) in steps.iter().enumerate() {
                if let DeValue::Table(t) = s.get_ref() {
                    let mut p = path.clone();
                    p.push(Seg::Index(j));
                    self.known_keys(t, item_keys, &p);
                }
            }
        }
    }

    /// A target's `[[target.checks]]`: steps with `within` and
    /// `interval`; None after reporting every bad one.
    pub(super) fn checks(&mut self, i: usize, raw: Vec<RawHostCheck>) -> Option<Vec<HostCheck>> {
        let mut ok = true;
        let mut timing = Vec::new();
        for (j, c) in raw.iter().enumerate() {
            let at = |k| {
                [
                    Seg::Key("target"),
                    Seg::Index(i),
                    Seg::Key("checks"),
                    Seg::Index(j),
                    Seg::Key(k),
                ]
            };
            let within = self
                .duration(&at("within"), c.within.clone())
                .unwrap_or(DEFAULT_CHECK_WITHIN);
            let interval = self
                .duration(&at("interval"), c.interval.clone())
                .unwrap_or(DEFAULT_CHECK_INTERVAL);
            for (key, d) in [("within", within), ("interval", interval)] {
                if d.is_zero() {
                    self.problem(&at(key), "must be longer than 0s");
                    ok = false;
                }
            }
            timing.push((within, interval));
        }
        // Names and scripts are checked as a step's are.
        let as_steps = raw
            .into_iter()
            .map(|c| RawStep {
                name: c.name,
                run: c.run,
            })
            .collect();
        let steps = self.steps(i, "checks", as_steps)?;
        ok.then(|| {
            steps
                .into_iter()
                .zip(timing)
                .map(|(step, (within, interval))| HostCheck {
                    name: step.name,
                    run: step.run,
                    within,
                    interval,
                })
                .collect()
        })
    }

    /// The steps of one of a target's step lists (`steps`, `teardown`),
    /// or None after reporting every bad one.
    pub(super) fn steps(
        &mut self,
        i: usize,
        list: &'static str,
        raw: Vec<RawStep>,
    ) -> Option<Vec<Step>> {
        let mut ok = true;
        let mut steps = Vec::new();
        let mut names = HashSet::new();
        for (j, s) in raw.into_iter().enumerate() {
            let p = |k| {
                [
                    Seg::Key("target"),
                    Seg::Index(i),
                    Seg::Key(list),
                    Seg::Index(j),
                    Seg::Key(k),
                ]
            };
            match (s.name, s.run) {
                (Some(name), Some(run)) if !name.trim().is_empty() && !run.trim().is_empty() => {
                    if !names.insert(name.clone()) {
                        self.problem(
                            &p("name"),
                            format!("step name {name:?} is used twice in this list"),
                        );
                        ok = false;
                    }
                    steps.push(Step { name, run })
                }
                (name, run) => {
                    if name.is_none_or(|n| n.trim().is_empty()) {
                        self.problem(&p("name"), "missing: every step needs a name");
                    }
                    if run.is_none_or(|r| r.trim().is_empty()) {
                        self.problem(&p("run"), "missing: every step needs a script to run");
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(steps)
    }

    /// `hosts`: at least one, each readable, none twice.
    fn target_hosts(&mut self, i: usize, raw: Option<Vec<String>>, ok: &mut bool) -> Vec<Host> {
        let at = |k| [Seg::Key("target"), Seg::Index(i), Seg::Key(k)];
        let mut hosts = Vec::new();
        match raw {
            Some(list) if !list.is_empty() => {
                let mut seen = HashSet::new();
                for (j, h) in list.iter().enumerate() {
                    let p = [
                        Seg::Key("target"),
                        Seg::Index(i),
                        Seg::Key("hosts"),
                        Seg::Index(j),
                    ];
                    match Host::parse(h) {
                        Ok(host) if !seen.insert(host.clone()) => {
                            self.problem(&p, format!("{h:?} is listed twice"));
                            *ok = false;
                        }
                        Ok(host) => hosts.push(host),
                        Err(e) => {
                            self.problem(&p, e);
                            *ok = false;
                        }
                    }
                }
            }
            _ => {
                self.problem(
                    &at("hosts"),
                    "missing: list at least one \"user@host[:port]\"",
                );
                *ok = false;
            }
        }
        hosts
    }

    /// `require_checks`: names, none empty.
    fn require_checks(&mut self, i: usize, raw: Option<Vec<String>>, ok: &mut bool) -> Vec<String> {
        let require_checks = raw.unwrap_or_default();
        for (j, name) in require_checks.iter().enumerate() {
            if name.trim().is_empty() {
                self.problem(
                    &[
                        Seg::Key("target"),
                        Seg::Index(i),
                        Seg::Key("require_checks"),
                        Seg::Index(j),
                    ],
                    "an empty name: give a check run or status context, such as \"test\", or \"*\" for every one",
                );
                *ok = false;
            }
        }
        require_checks
    }

    /// A duration that must be longer than zero, when given.
    fn positive(
        &mut self,
        path: &[Seg],
        raw: Option<RawDuration>,
        ok: &mut bool,
    ) -> Option<Duration> {
        let d = self.duration(path, raw)?;
        if d.is_zero() {
            self.problem(path, "must be longer than 0s");
            *ok = false;
        }
        Some(d)
    }

    /// A target's repository ("owner/name") and environment (a name or a
    /// glob), each None with a problem said when it is missing or wrong.
    fn target_names(
        &mut self,
        i: usize,
        repository: Option<String>,
        environment: Option<String>,
    ) -> (Option<String>, Option<String>) {
        let at = |k| [Seg::Key("target"), Seg::Index(i), Seg::Key(k)];
        let repository = match repository {
            Some(r) if is_repository(&r) => Some(r),
            Some(r) => {
                self.problem(&at("repository"), format!("{r:?} is not \"owner/name\""));
                None
            }
            None => {
                self.problem(&at("repository"), "missing, e.g. \"octo-org/web\"");
                None
            }
        };
        let environment = match environment {
            Some(e) if !e.trim().is_empty() => Some(e),
            _ => {
                self.problem(
                    &at("environment"),
                    "missing, e.g. \"production\" or \"review-*\"",
                );
                None
            }
        };
        (repository, environment)
    }

    pub(super) fn target(&mut self, i: usize, raw: RawTarget) -> Option<Target> {
        let at = |k| [Seg::Key("target"), Seg::Index(i), Seg::Key(k)];
        let mut ok = true;
        let (repository, environment) = self.target_names(i, raw.repository, raw.environment);
        let task = raw.task.unwrap_or_else(|| DEFAULT_TASK.into());
        let hosts = self.target_hosts(i, raw.hosts, &mut ok);
        let parallel = raw.parallel.and_then(|n| {
            let v = usize::try_from(n).ok().and_then(NonZeroUsize::new);
            if v.is_none() {
                self.problem(&at("parallel"), format!("{n} is not a positive number"));
                ok = false;
            }
            v
        });
        let timeout = self
            .positive(&at("timeout"), raw.timeout, &mut ok)
            .unwrap_or(DEFAULT_TARGET_TIMEOUT);
        let environment_url = raw.environment_url.and_then(|u| {
            let v = self.http_url(&at("environment_url"), &u);
            ok &= v.is_some();
            v
        });
        let steps = self.steps(i, "steps", raw.steps);
        let teardown = self.steps(i, "teardown", raw.teardown);
        let checks = self.checks(i, raw.checks);
        let (rollback, rollback_steps) = match raw.rollback {
            None => (false, Some(Vec::new())),
            Some(RawRollback::On(on)) => (on, Some(Vec::new())),
            Some(RawRollback::Steps(steps)) => (true, self.steps(i, "rollback", steps)),
        };
        let require_checks = self.require_checks(i, raw.require_checks, &mut ok);
        let checks_timeout = self
            .positive(&at("checks_timeout"), raw.checks_timeout, &mut ok)
            .unwrap_or(DEFAULT_CHECKS_TIMEOUT);
        let teardown_after = self.positive(&at("teardown_after"), raw.teardown_after, &mut ok);
        let auto_deploy = match raw.auto_deploy {
            None => None,
            Some(a) => {
                let environment = environment.as_deref().unwrap_or_default();
                let v = self.auto_deploy(i, environment, !require_checks.is_empty(), a);
                ok &= v.is_some();
                v
            }
        };
        let (Some(steps), Some(teardown), Some(checks), Some(rollback_steps)) =
            (steps, teardown, checks, rollback_steps)
        else {
            return None;
        };
        if ok && steps.is_empty() {
            self.warning(
                &[Seg::Key("target"), Seg::Index(i)],
                "no [[target.steps]]: its deployments will end in 'error'",
            );
        }
        if !ok {
            return None;
        }
        Some(Target {
            repository: RepoName::new(repository?),
            environment: environment?,
            task,
            hosts,
            parallel,
            timeout,
            environment_url,
            supersede: raw.supersede.unwrap_or(true),
            auto_inactive: raw.auto_inactive.unwrap_or(true),
            teardown_after,
            steps,
            teardown,
            checks,
            rollback,
            rollback_steps,
            require_checks,
            checks_timeout,
            auto_deploy,
        })
    }
}
