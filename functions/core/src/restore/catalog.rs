//! The catalog side of a restore: a rollback, recreation or repair registers the table's
//! captured Glue entries again under their own names; a clone may be registered under a new
//! name (`"register": "db.table"`). An entry of that name for another table is never
//! overwritten: the restore goes on, leaves the entry alone, and says why.
//!
//! A rollback whose storage is intact (the source's latest version already equals the restore
//! point) and whose entry was dropped is a catalog-only restore: nothing is copied or
//! committed, the entry is registered and that is all.

use std::sync::Arc;
use std::time::Instant;

use crate::catalog::decide::{clone_definition, restore_action};
use crate::catalog::{
    Catalog, CatalogAction, CatalogChange, DefinitionStore, TableDefinition, TableName,
};
use crate::error::{Error, Result};
use crate::keys::S3Location;
use crate::store::Store;

use super::execute::RestoreOutcome;
use super::plan::RestorePlan;
use super::request::{Mode, RestoreRequest};
use super::Restorer;

/// The change that registers `wanted`, given the entry of that name.
pub fn change_for(wanted: TableDefinition, existing: Option<&TableDefinition>) -> CatalogChange {
    CatalogChange {
        table: wanted.table_name().to_string(),
        location: wanted.location().map(str::to_string),
        action: restore_action(&wanted, existing),
        definition: wanted,
        done: false,
    }
}

/// Whether the plan restores the catalog alone: a rollback that copies nothing, whose commit
/// would change nothing, with an entry to register.
pub fn catalog_only(plan: &RestorePlan) -> bool {
    let commit_changes_nothing = plan
        .commit
        .as_ref()
        .is_none_or(|c| c.files_to_add == 0 && c.files_to_remove == 0 && !c.metadata_restored);
    plan.mode == Mode::Rollback
        && !plan.recreate
        && plan.copies.is_empty()
        && commit_changes_nothing
        && plan
            .catalog
            .iter()
            .any(|c| matches!(c.action, CatalogAction::Create | CatalogAction::Update))
}

impl<S: Store> Restorer<S> {
    /// Registers restored tables in `catalog` (for `LIFEBOAT_GLUE_DATABASES`).
    pub fn with_catalog(mut self, catalog: Arc<dyn Catalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Fills in the catalog changes of `plan`. Reads only.
    pub async fn plan_catalog(
        &self,
        request: &RestoreRequest,
        plan: &mut RestorePlan,
    ) -> Result<()> {
        let databases = &self.config.glue_databases;
        let register = request
            .register
            .as_deref()
            .map(TableName::parse)
            .transpose()?;
        if let Some(name) = &register {
            if request.mode != Mode::Clone {
                return Err(Error::bad_input(
                    "register is for clones (a rollback, recreation or repair registers the table again under its captured name)",
                ));
            }
            if !databases.contains(&name.database) {
                return Err(Error::bad_input(format!(
                    "register: database {:?} is not in LIFEBOAT_GLUE_DATABASES ({}); the restorer may only register tables there",
                    name.database,
                    databases.join(",")
                )));
            }
        }
        let Some(catalog) = &self.catalog else {
            if register.is_some() {
                return Err(Error::bad_input(
                    "register needs the Glue Data Catalog: set LIFEBOAT_GLUE_DATABASES",
                ));
            }
            return Ok(());
        };
        if databases.is_empty() {
            return Ok(());
        }
        let records = DefinitionStore {
            store: &self.store,
            bucket: &self.config.backup_bucket,
            kms_key_id: self.config.kms_key_id.clone(),
        };
        let captured = records.newest_for_root(databases, &plan.table).await?;
        let wanted: Vec<TableDefinition> = match (request.mode, register) {
            (Mode::Clone, None) => Vec::new(),
            (Mode::Clone, Some(name)) => {
                let target = S3Location::parse(&plan.target)?;
                vec![clone_definition(
                    captured.first().map(|c| &c.definition),
                    &name,
                    &target,
                )]
            }
            (Mode::Rollback | Mode::Repair, _) => {
                captured.into_iter().map(|c| c.definition).collect()
            }
        };
        for d in wanted {
            let existing = catalog.get_table(&d.table_name()).await?;
            let change = change_for(d, existing.as_ref());
            if let CatalogAction::Refuse { reason } = &change.action {
                plan.notes.push(format!("catalog: {reason}"));
            }
            plan.catalog.push(change);
        }
        if catalog_only(plan) {
            plan.commit = None;
            plan.notes.push(
                "the storage is intact (the source's latest version already equals the restore point): only the catalog entry is registered again; nothing is copied or committed".into(),
            );
        }
        Ok(())
    }

    /// Makes the planned catalog changes (after the data is in place).
    pub async fn apply_catalog(&self, plan: &mut RestorePlan) -> Result<()> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        for change in &mut plan.catalog {
            match change.action {
                CatalogAction::Create => catalog.create_table(&change.definition).await?,
                CatalogAction::Update => catalog.update_table(&change.definition).await?,
                CatalogAction::Leave | CatalogAction::Refuse { .. } => continue,
            }
            change.done = true;
            tracing::info!(table = %change.table, location = ?change.location, "catalog entry registered");
        }
        Ok(())
    }

    /// What a catalog-only restore did: nothing to the storage.
    pub(crate) fn nothing_copied(started: Instant) -> RestoreOutcome {
        RestoreOutcome {
            complete: true,
            seconds: started.elapsed().as_secs_f64(),
            ..RestoreOutcome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StorageDefinition;
    use crate::restore::PlannedCommit;

    #[test]
    fn catalog_only_restores() {
        let def = TableDefinition {
            database: "db".into(),
            name: "t".into(),
            storage: StorageDefinition {
                location: Some("s3://lake/t".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let create = change_for(def.clone(), None);
        let leave = change_for(def.clone(), Some(&def));
        let noop = PlannedCommit {
            version: 4,
            read_version: 3,
            ..Default::default()
        };
        let adds = PlannedCommit {
            files_to_add: 2,
            ..noop.clone()
        };
        let copy = crate::restore::PlannedCopy {
            path: "x.parquet".into(),
            size: 1,
            etag: "e".into(),
            reason: crate::restore::CopyReason::Data,
        };
        let plan = |mode,
                    recreate,
                    copies: Vec<_>,
                    commit: Option<PlannedCommit>,
                    catalog: Vec<CatalogChange>| RestorePlan {
            mode,
            recreate,
            copies,
            commit,
            catalog,
            ..RestorePlan::default()
        };
        let cases = [
            (
                "dropped entry, intact storage",
                plan(
                    Mode::Rollback,
                    false,
                    vec![],
                    Some(noop.clone()),
                    vec![create.clone()],
                ),
                true,
            ),
            (
                "entry in place",
                plan(
                    Mode::Rollback,
                    false,
                    vec![],
                    Some(noop.clone()),
                    vec![leave],
                ),
                false,
            ),
            (
                "no captured entry",
                plan(Mode::Rollback, false, vec![], Some(noop.clone()), vec![]),
                false,
            ),
            (
                "files to copy",
                plan(
                    Mode::Rollback,
                    false,
                    vec![copy],
                    Some(noop.clone()),
                    vec![create.clone()],
                ),
                false,
            ),
            (
                "a commit with changes",
                plan(
                    Mode::Rollback,
                    false,
                    vec![],
                    Some(adds),
                    vec![create.clone()],
                ),
                false,
            ),
            (
                "recreation",
                plan(Mode::Rollback, true, vec![], None, vec![create.clone()]),
                false,
            ),
            (
                "clone",
                plan(Mode::Clone, false, vec![], None, vec![create]),
                false,
            ),
        ];
        for (name, plan, expected) in cases {
            assert_eq!(catalog_only(&plan), expected, "{name}");
        }
    }
}
