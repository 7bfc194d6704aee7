//! Who is who: `[people]`, `[groups]` and `[channels]`, and the lookups the engine
//! asks of them. Identity comes from verified platform data; this only maps it.

use std::collections::BTreeMap;

use super::Config;
use super::Person;
use super::spans::{Reader, Section};
use crate::types::{PersonId, Place, Platform, PlatformUser};

impl Config {
    /// The configured person behind a platform account: Slack and Matrix ids match
    /// `slack` / `matrix`, CLI users match `unix`. A web user's id is already a person
    /// id (the web login established it), so it matches a `[people]` name.
    pub fn person_for(&self, user: &PlatformUser) -> Option<PersonId> {
        if user.platform == Platform::Web {
            return self.people.keys().find(|p| p.as_str() == user.id).cloned();
        }
        self.people
            .iter()
            .find(|(_, person)| {
                let account = match user.platform {
                    Platform::Slack => &person.slack,
                    Platform::Matrix => &person.matrix,
                    Platform::Cli => &person.unix,
                    Platform::Web | Platform::Schedule => &None,
                };
                account.as_deref() == Some(user.id.as_str())
            })
            .map(|(id, _)| id.clone())
    }

    /// The members of group `name`.
    pub fn group(&self, name: &str) -> Option<&[PersonId]> {
        self.groups.get(name).map(Vec::as_slice)
    }

    /// Channel names (as manifests use them) whose places include `place`.
    pub fn channel_names_for(&self, place: &Place) -> Vec<String> {
        let key = place.key();
        self.channels
            .iter()
            .filter(|(_, places)| places.contains(&key))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Names of people, groups and channels: letters, digits, `-`, `_`, `.`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Reads `[people]`, `[groups]` and `[channels]` into `c`.
pub(super) fn read(r: &mut Reader<'_>, top: &Section<'_, '_>, c: &mut Config) {
    read_people(r, top, c);
    if let Some(groups) = r.section(top, "groups") {
        for (name, span, _) in groups.keys() {
            if !is_name(name) {
                let msg = format!("`{name}` is not a valid group name (letters, digits, -, _, .)");
                r.error(&span, Some(groups.key_path(name)), msg);
            }
            let mut members = Vec::new();
            for (member, span) in r.strings(&groups, name).unwrap_or_default() {
                if c.people.keys().any(|p| p.as_str() == member) {
                    members.push(PersonId(member));
                } else {
                    let msg = format!("`{member}` is not in [people]");
                    r.key_error(&groups, name, &span, msg);
                }
            }
            c.groups.insert(name.to_string(), members);
        }
    }
    if let Some(channels) = r.section(top, "channels") {
        for (name, span, _) in channels.keys() {
            if !is_name(name) {
                let msg =
                    format!("`{name}` is not a valid channel name (letters, digits, -, _, .)");
                r.error(&span, Some(channels.key_path(name)), msg);
            }
            let mut places = Vec::new();
            for (place, span) in r.strings(&channels, name).unwrap_or_default() {
                match place.split_once(':') {
                    Some(("slack" | "matrix" | "cli", id)) if !id.is_empty() => places.push(place),
                    // The web UI and API ask from one place (`web::web_place`).
                    Some(("web", "local")) => places.push(place),
                    Some(("web", _)) => {
                        let msg = format!(
                            "`{place}` is not a place: the web UI and API are the one place \"web:local\""
                        );
                        r.key_error(&channels, name, &span, msg);
                    }
                    _ => {
                        let msg = format!(
                            "`{place}` is not a place; write \"slack:C0123ABC\", \"matrix:!room:example.org\", \"cli:local\" or \"web:local\""
                        );
                        r.key_error(&channels, name, &span, msg);
                    }
                }
            }
            c.channels.insert(name.to_string(), places);
        }
    }
}

fn read_people(r: &mut Reader<'_>, top: &Section<'_, '_>, c: &mut Config) {
    let Some(people) = r.section(top, "people") else {
        return;
    };
    // Who already claimed each account, so one account never maps to two people.
    let mut owners: BTreeMap<(&str, String), String> = BTreeMap::new();
    for (name, span, _) in people.keys() {
        if !is_name(name) {
            let msg = format!("`{name}` is not a valid person name (letters, digits, -, _, .)");
            r.error(&span, Some(people.key_path(name)), msg);
        }
        let Some(section) = r.section(&people, name) else {
            continue;
        };
        r.unknown_keys(&section, &["slack", "matrix", "unix"]);
        let mut person = Person::default();
        for key in ["slack", "matrix", "unix"] {
            let Some((id, span)) = r.string(&section, key) else {
                continue;
            };
            if id.trim().is_empty() {
                r.key_error(&section, key, &span, "must not be empty");
                continue;
            }
            if key == "matrix" && !super::parse::is_matrix_user(&id) {
                let msg = format!("`{id}` is not a Matrix user id like @alice:example.org");
                r.key_error(&section, key, &span, msg);
                continue;
            }
            if let Some(other) = owners.insert((key, id.clone()), name.to_string()) {
                let msg = format!("`{id}` is also the {key} account of `{other}`");
                r.key_error(&section, key, &span, msg);
            }
            match key {
                "slack" => person.slack = Some(id),
                "matrix" => person.matrix = Some(id),
                _ => person.unix = Some(id),
            }
        }
        c.people.insert(PersonId(name.to_string()), person);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TEXT: &str = r#"
[people.alice]
slack = "U024BE7LH"
matrix = "@alice:example.org"
unix = "alice"

[people.bob]
slack = "U0BOB"

[groups]
sre-leads = ["alice", "bob"]

[channels]
reports = ["slack:C0123REPORTS", "matrix:!abc123:example.org", "web:local"]
approvals = ["slack:C0456APPROVE"]
"#;

    #[test]
    fn accounts_map_to_people_per_platform() {
        let c = Config::parse(TEXT, Path::new("/x/execgov.toml")).expect("valid config");
        let user = |platform, id: &str| PlatformUser {
            platform,
            id: id.to_string(),
        };
        let alice = Some(PersonId("alice".into()));
        assert_eq!(c.person_for(&user(Platform::Slack, "U024BE7LH")), alice);
        assert_eq!(
            c.person_for(&user(Platform::Matrix, "@alice:example.org")),
            alice
        );
        assert_eq!(
            c.person_for(&user(Platform::Cli, "alice")),
            alice,
            "CLI matches unix"
        );
        assert_eq!(
            c.person_for(&user(Platform::Matrix, "U024BE7LH")),
            None,
            "a Slack id never matches on Matrix"
        );
        assert_eq!(c.group("sre-leads").map(<[_]>::len), Some(2));
        let place = Place::new(Platform::Matrix, "!abc123:example.org");
        assert_eq!(c.channel_names_for(&place), vec!["reports".to_string()]);
        assert_eq!(
            c.channel_names_for(&Place::new(Platform::Web, "local")),
            vec!["reports".to_string()],
            "web:local may be listed in [channels], as the README says"
        );
    }

    #[test]
    fn the_web_is_one_place() {
        let err = Config::parse(
            "[channels]\nx = [\"web:remote\"]\n",
            Path::new("execgov.toml"),
        )
        .expect_err("invalid");
        assert!(
            err.to_string()
                .contains("key `channels.x`: `web:remote` is not a place: the web UI and API are the one place \"web:local\""),
            "{err}"
        );
    }

    #[test]
    fn bad_references_are_errors_with_lines() {
        let text = "[people.alice]\nslack = \"U1\"\n[people.eve]\nslack = \"U1\"\n\
                    [groups]\nsre = [\"alice\", \"mallory\"]\n[channels]\nx = [\"irc:#foo\"]\n";
        let err = Config::parse(text, Path::new("execgov.toml")).expect_err("invalid");
        let shown = err.to_string();
        assert!(
            shown.contains("execgov.toml:4: key `people.eve.slack`: `U1` is also"),
            "{shown}"
        );
        assert!(
            shown.contains("execgov.toml:6: key `groups.sre`: `mallory` is not in [people]"),
            "{shown}"
        );
        assert!(
            shown.contains("execgov.toml:8: key `channels.x`: `irc:#foo` is not a place"),
            "{shown}"
        );
    }
}
