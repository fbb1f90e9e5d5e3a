//! [`Catalog`] over `aws-sdk-glue`: definitions in, definitions out. Only the fields a
//! [`TableDefinition`] holds cross the boundary; Glue's bookkeeping (create time, version id,
//! created by) is Glue's to set again.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, Table, TableInput};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Catalog, ColumnDefinition, StorageDefinition, TableDefinition, TableName};
use crate::error::{Error, Result};

/// The production catalog.
#[derive(Clone, Debug)]
pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
}

impl GlueCatalog {
    pub fn new(client: aws_sdk_glue::Client) -> Self {
        GlueCatalog { client }
    }
}

fn catalog_error<E, R>(operation: &'static str, table: String, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(e) => matches!(
            e.err().code(),
            Some("ThrottlingException" | "InternalServiceException" | "OperationTimeoutException")
        ),
        _ => false,
    };
    Error::Catalog {
        operation,
        table,
        message: DisplayErrorContext(&err).to_string(),
        retryable,
        source: Some(Box::new(err)),
    }
}

fn map(from: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    from.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn column(c: &Column) -> ColumnDefinition {
    ColumnDefinition {
        name: c.name().to_string(),
        data_type: c.r#type().map(str::to_string),
        comment: c.comment().map(str::to_string),
        parameters: map(c.parameters()),
    }
}

/// A Glue table as a definition.
pub fn definition_of(database: &str, table: &Table) -> TableDefinition {
    let sd = table.storage_descriptor();
    let serde = sd.and_then(|s| s.serde_info());
    TableDefinition {
        database: table.database_name().unwrap_or(database).to_string(),
        name: table.name().to_string(),
        table_type: table.table_type().map(str::to_string),
        description: table.description().map(str::to_string),
        owner: table.owner().map(str::to_string),
        parameters: map(table.parameters()),
        storage: StorageDefinition {
            location: sd.and_then(|s| s.location()).map(str::to_string),
            columns: sd
                .map(|s| s.columns().iter().map(column).collect())
                .unwrap_or_default(),
            input_format: sd.and_then(|s| s.input_format()).map(str::to_string),
            output_format: sd.and_then(|s| s.output_format()).map(str::to_string),
            compressed: sd.map(|s| s.compressed()).unwrap_or(false),
            serde_name: serde.and_then(|s| s.name()).map(str::to_string),
            serde_library: serde
                .and_then(|s| s.serialization_library())
                .map(str::to_string),
            serde_parameters: map(serde.and_then(|s| s.parameters())),
            parameters: map(sd.and_then(|s| s.parameters())),
        },
        partition_keys: table.partition_keys().iter().map(column).collect(),
    }
}

fn glue_column(c: &ColumnDefinition) -> Result<Column> {
    let mut b = Column::builder().name(&c.name);
    b = b.set_type(c.data_type.clone());
    b = b.set_comment(c.comment.clone());
    if !c.parameters.is_empty() {
        b = b.set_parameters(Some(c.parameters.clone().into_iter().collect()));
    }
    b.build()
        .map_err(|e| Error::bad_input(format!("column {:?}: {e}", c.name)))
}

/// A definition as Glue's `TableInput`.
pub fn table_input(d: &TableDefinition) -> Result<TableInput> {
    let s = &d.storage;
    let serde = SerDeInfo::builder()
        .set_name(s.serde_name.clone())
        .set_serialization_library(s.serde_library.clone())
        .set_parameters(
            (!s.serde_parameters.is_empty())
                .then(|| s.serde_parameters.clone().into_iter().collect()),
        )
        .build();
    let storage = StorageDescriptor::builder()
        .set_location(s.location.clone())
        .set_columns(Some(
            s.columns.iter().map(glue_column).collect::<Result<_>>()?,
        ))
        .set_input_format(s.input_format.clone())
        .set_output_format(s.output_format.clone())
        .compressed(s.compressed)
        .serde_info(serde)
        .set_parameters(
            (!s.parameters.is_empty()).then(|| s.parameters.clone().into_iter().collect()),
        )
        .build();
    TableInput::builder()
        .name(&d.name)
        .set_table_type(d.table_type.clone())
        .set_description(d.description.clone())
        .set_owner(d.owner.clone())
        .set_parameters(Some(d.parameters.clone().into_iter().collect()))
        .storage_descriptor(storage)
        .set_partition_keys(Some(
            d.partition_keys
                .iter()
                .map(glue_column)
                .collect::<Result<_>>()?,
        ))
        .build()
        .map_err(|e| Error::bad_input(format!("definition of {}: {e}", d.table_name())))
}

impl Catalog for GlueCatalog {
    fn get_table<'a>(
        &'a self,
        table: &'a TableName,
    ) -> BoxFuture<'a, Result<Option<TableDefinition>>> {
        async move {
            match self
                .client
                .get_table()
                .database_name(&table.database)
                .name(&table.name)
                .send()
                .await
            {
                Ok(out) => Ok(out.table().map(|t| definition_of(&table.database, t))),
                Err(SdkError::ServiceError(e)) if e.err().is_entity_not_found_exception() => {
                    Ok(None)
                }
                Err(e) => Err(catalog_error("GetTable", table.to_string(), e)),
            }
        }
        .boxed()
    }

    fn list_tables<'a>(&'a self, database: &'a str) -> BoxFuture<'a, Result<Vec<TableDefinition>>> {
        async move {
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = match self
                    .client
                    .get_tables()
                    .database_name(database)
                    .set_next_token(token.take())
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(SdkError::ServiceError(e)) if e.err().is_entity_not_found_exception() => {
                        return Ok(Vec::new())
                    }
                    Err(e) => return Err(catalog_error("GetTables", format!("{database}.*"), e)),
                };
                all.extend(out.table_list().iter().map(|t| definition_of(database, t)));
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_string()),
                    _ => break,
                }
            }
            Ok(all)
        }
        .boxed()
    }

    fn create_table<'a>(&'a self, definition: &'a TableDefinition) -> BoxFuture<'a, Result<()>> {
        async move {
            let input = table_input(definition)?;
            self.client
                .create_table()
                .database_name(&definition.database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| {
                    catalog_error("CreateTable", definition.table_name().to_string(), e)
                })?;
            Ok(())
        }
        .boxed()
    }

    fn update_table<'a>(&'a self, definition: &'a TableDefinition) -> BoxFuture<'a, Result<()>> {
        async move {
            let input = table_input(definition)?;
            self.client
                .update_table()
                .database_name(&definition.database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| {
                    catalog_error("UpdateTable", definition.table_name().to_string(), e)
                })?;
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip_through_table_input() {
        let d = TableDefinition {
            database: "sales".into(),
            name: "orders".into(),
            table_type: Some("EXTERNAL_TABLE".into()),
            parameters: [(
                "spark.sql.sources.provider".to_string(),
                "delta".to_string(),
            )]
            .into_iter()
            .collect(),
            storage: StorageDefinition {
                location: Some("s3://lake/orders".into()),
                columns: vec![ColumnDefinition {
                    name: "id".into(),
                    data_type: Some("bigint".into()),
                    ..Default::default()
                }],
                serde_library: Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into()),
                ..Default::default()
            },
            partition_keys: vec![ColumnDefinition {
                name: "city".into(),
                data_type: Some("string".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let input = table_input(&d).unwrap();
        let table = Table::builder()
            .name(input.name())
            .database_name("sales")
            .set_table_type(input.table_type().map(str::to_string))
            .set_parameters(input.parameters().cloned())
            .set_storage_descriptor(input.storage_descriptor().cloned())
            .set_partition_keys(Some(input.partition_keys().to_vec()))
            .build()
            .unwrap();
        assert_eq!(definition_of("sales", &table), d);
    }
}
