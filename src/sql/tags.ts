import type { Node, ObjectType } from 'libpg-query';
import { nodeType } from './ast.js';

/**
 * The command tag Postgres answers a statement with, after utility.c's CreateCommandTag. Statement kinds
 * with their own module (SELECT, INSERT, SET, BEGIN, ...) set their tag there; this covers the rest.
 */
const FIXED: Record<string, string> = {
  CreateStmt: 'CREATE TABLE',
  CreateForeignTableStmt: 'CREATE FOREIGN TABLE',
  CreateSchemaStmt: 'CREATE SCHEMA',
  CreateExtensionStmt: 'CREATE EXTENSION',
  AlterExtensionStmt: 'ALTER EXTENSION',
  AlterExtensionContentsStmt: 'ALTER EXTENSION',
  CreateFdwStmt: 'CREATE FOREIGN DATA WRAPPER',
  AlterFdwStmt: 'ALTER FOREIGN DATA WRAPPER',
  CreateForeignServerStmt: 'CREATE SERVER',
  AlterForeignServerStmt: 'ALTER SERVER',
  CreateUserMappingStmt: 'CREATE USER MAPPING',
  AlterUserMappingStmt: 'ALTER USER MAPPING',
  DropUserMappingStmt: 'DROP USER MAPPING',
  ImportForeignSchemaStmt: 'IMPORT FOREIGN SCHEMA',
  CreateTableSpaceStmt: 'CREATE TABLESPACE',
  DropTableSpaceStmt: 'DROP TABLESPACE',
  AlterTableSpaceOptionsStmt: 'ALTER TABLESPACE',
  TruncateStmt: 'TRUNCATE TABLE',
  CommentStmt: 'COMMENT',
  SecLabelStmt: 'SECURITY LABEL',
  CopyStmt: 'COPY',
  AlterDefaultPrivilegesStmt: 'ALTER DEFAULT PRIVILEGES',
  AlterDomainStmt: 'ALTER DOMAIN',
  CompositeTypeStmt: 'CREATE TYPE',
  CreateEnumStmt: 'CREATE TYPE',
  CreateRangeStmt: 'CREATE TYPE',
  AlterEnumStmt: 'ALTER TYPE',
  AlterTypeStmt: 'ALTER TYPE',
  ViewStmt: 'CREATE VIEW',
  IndexStmt: 'CREATE INDEX',
  RuleStmt: 'CREATE RULE',
  CreateSeqStmt: 'CREATE SEQUENCE',
  AlterSeqStmt: 'ALTER SEQUENCE',
  DoStmt: 'DO',
  CreatedbStmt: 'CREATE DATABASE',
  AlterDatabaseStmt: 'ALTER DATABASE',
  AlterDatabaseSetStmt: 'ALTER DATABASE',
  AlterDatabaseRefreshCollStmt: 'ALTER DATABASE',
  DropdbStmt: 'DROP DATABASE',
  NotifyStmt: 'NOTIFY',
  ListenStmt: 'LISTEN',
  UnlistenStmt: 'UNLISTEN',
  LoadStmt: 'LOAD',
  CallStmt: 'CALL',
  ClusterStmt: 'CLUSTER',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  AlterSystemStmt: 'ALTER SYSTEM',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateEventTrigStmt: 'CREATE EVENT TRIGGER',
  AlterEventTrigStmt: 'ALTER EVENT TRIGGER',
  CreatePLangStmt: 'CREATE LANGUAGE',
  CreateRoleStmt: 'CREATE ROLE',
  AlterRoleStmt: 'ALTER ROLE',
  AlterRoleSetStmt: 'ALTER ROLE',
  DropRoleStmt: 'DROP ROLE',
  DropOwnedStmt: 'DROP OWNED',
  ReassignOwnedStmt: 'REASSIGN OWNED',
  LockStmt: 'LOCK TABLE',
  ConstraintsSetStmt: 'SET CONSTRAINTS',
  CheckPointStmt: 'CHECKPOINT',
  ReindexStmt: 'REINDEX',
  CreateConversionStmt: 'CREATE CONVERSION',
  CreateCastStmt: 'CREATE CAST',
  CreateOpClassStmt: 'CREATE OPERATOR CLASS',
  CreateOpFamilyStmt: 'CREATE OPERATOR FAMILY',
  AlterOpFamilyStmt: 'ALTER OPERATOR FAMILY',
  AlterOperatorStmt: 'ALTER OPERATOR',
  AlterTSDictionaryStmt: 'ALTER TEXT SEARCH DICTIONARY',
  AlterTSConfigurationStmt: 'ALTER TEXT SEARCH CONFIGURATION',
  CreatePolicyStmt: 'CREATE POLICY',
  AlterPolicyStmt: 'ALTER POLICY',
  CreateAmStmt: 'CREATE ACCESS METHOD',
  CreatePublicationStmt: 'CREATE PUBLICATION',
  AlterPublicationStmt: 'ALTER PUBLICATION',
  CreateSubscriptionStmt: 'CREATE SUBSCRIPTION',
  AlterSubscriptionStmt: 'ALTER SUBSCRIPTION',
  DropSubscriptionStmt: 'DROP SUBSCRIPTION',
  AlterCollationStmt: 'ALTER COLLATION',
  PrepareStmt: 'PREPARE',
  ExecuteStmt: 'EXECUTE',
  CreateStatsStmt: 'CREATE STATISTICS',
  AlterStatsStmt: 'ALTER STATISTICS',
  CreateTransformStmt: 'CREATE TRANSFORM',
  CreateDomainStmt: 'CREATE DOMAIN',
  CreateFunctionStmt: 'CREATE FUNCTION',
  AlterFunctionStmt: 'ALTER FUNCTION',
  ExplainStmt: 'EXPLAIN',
  VariableShowStmt: 'SHOW',
  DeclareCursorStmt: 'DECLARE CURSOR',
  MergeStmt: 'MERGE',
};

/** How each object type is spelled in DROP / ALTER / CREATE tags. */
const OBJECT_NAMES: Partial<Record<ObjectType, string>> = {
  OBJECT_TABLE: 'TABLE',
  OBJECT_SEQUENCE: 'SEQUENCE',
  OBJECT_VIEW: 'VIEW',
  OBJECT_MATVIEW: 'MATERIALIZED VIEW',
  OBJECT_INDEX: 'INDEX',
  OBJECT_FOREIGN_TABLE: 'FOREIGN TABLE',
  OBJECT_TYPE: 'TYPE',
  OBJECT_DOMAIN: 'DOMAIN',
  OBJECT_COLLATION: 'COLLATION',
  OBJECT_CONVERSION: 'CONVERSION',
  OBJECT_SCHEMA: 'SCHEMA',
  OBJECT_TSPARSER: 'TEXT SEARCH PARSER',
  OBJECT_TSDICTIONARY: 'TEXT SEARCH DICTIONARY',
  OBJECT_TSTEMPLATE: 'TEXT SEARCH TEMPLATE',
  OBJECT_TSCONFIGURATION: 'TEXT SEARCH CONFIGURATION',
  OBJECT_EXTENSION: 'EXTENSION',
  OBJECT_FUNCTION: 'FUNCTION',
  OBJECT_PROCEDURE: 'PROCEDURE',
  OBJECT_ROUTINE: 'ROUTINE',
  OBJECT_AGGREGATE: 'AGGREGATE',
  OBJECT_OPERATOR: 'OPERATOR',
  OBJECT_LANGUAGE: 'LANGUAGE',
  OBJECT_CAST: 'CAST',
  OBJECT_TRIGGER: 'TRIGGER',
  OBJECT_EVENT_TRIGGER: 'EVENT TRIGGER',
  OBJECT_RULE: 'RULE',
  OBJECT_FDW: 'FOREIGN DATA WRAPPER',
  OBJECT_FOREIGN_SERVER: 'SERVER',
  OBJECT_OPCLASS: 'OPERATOR CLASS',
  OBJECT_OPFAMILY: 'OPERATOR FAMILY',
  OBJECT_POLICY: 'POLICY',
  OBJECT_TRANSFORM: 'TRANSFORM',
  OBJECT_ACCESS_METHOD: 'ACCESS METHOD',
  OBJECT_PUBLICATION: 'PUBLICATION',
  OBJECT_STATISTIC_EXT: 'STATISTICS',
  OBJECT_DATABASE: 'DATABASE',
  OBJECT_ROLE: 'ROLE',
  OBJECT_TABLESPACE: 'TABLESPACE',
  OBJECT_SUBSCRIPTION: 'SUBSCRIPTION',
  OBJECT_COLUMN: 'TABLE',
  OBJECT_TABCONSTRAINT: 'TABLE',
  OBJECT_ATTRIBUTE: 'TYPE',
  OBJECT_DOMCONSTRAINT: 'DOMAIN',
  OBJECT_LARGEOBJECT: 'LARGE OBJECT',
};

function objectName(t: ObjectType | undefined, fallback: string): string {
  return (t !== undefined ? OBJECT_NAMES[t] : undefined) ?? fallback;
}

export function utilityTag(node: Node): string {
  if ('DropStmt' in node) return 'DROP ' + objectName(node.DropStmt.removeType, 'OBJECT');
  if ('AlterTableStmt' in node) return 'ALTER ' + objectName(node.AlterTableStmt.objtype, 'TABLE');
  if ('RenameStmt' in node) {
    const r = node.RenameStmt;
    const t = r.renameType === 'OBJECT_COLUMN' || r.renameType === 'OBJECT_TABCONSTRAINT' || r.renameType === 'OBJECT_TRIGGER' || r.renameType === 'OBJECT_RULE' || r.renameType === 'OBJECT_POLICY' ? r.relationType : r.renameType;
    return 'ALTER ' + objectName(t, 'OBJECT');
  }
  if ('AlterObjectSchemaStmt' in node) return 'ALTER ' + objectName(node.AlterObjectSchemaStmt.objectType, 'OBJECT');
  if ('AlterOwnerStmt' in node) return 'ALTER ' + objectName(node.AlterOwnerStmt.objectType, 'OBJECT');
  if ('AlterObjectDependsStmt' in node) return 'ALTER ' + objectName(node.AlterObjectDependsStmt.objectType, 'OBJECT');
  if ('DefineStmt' in node) return 'CREATE ' + objectName(node.DefineStmt.kind, 'OBJECT');
  if ('GrantStmt' in node) return node.GrantStmt.is_grant === true ? 'GRANT' : 'REVOKE';
  if ('GrantRoleStmt' in node) return node.GrantRoleStmt.is_grant === true ? 'GRANT ROLE' : 'REVOKE ROLE';
  if ('CreateFunctionStmt' in node) return node.CreateFunctionStmt.is_procedure === true ? 'CREATE PROCEDURE' : 'CREATE FUNCTION';
  if ('AlterFunctionStmt' in node) return 'ALTER ' + objectName(node.AlterFunctionStmt.objtype, 'FUNCTION');
  if ('VacuumStmt' in node) return node.VacuumStmt.is_vacuumcmd === true ? 'VACUUM' : 'ANALYZE';
  if ('CreateTableAsStmt' in node) {
    const c = node.CreateTableAsStmt;
    if (c.objtype === 'OBJECT_MATVIEW') return 'CREATE MATERIALIZED VIEW';
    return c.is_select_into === true ? 'SELECT INTO' : 'CREATE TABLE AS';
  }
  if ('FetchStmt' in node) return node.FetchStmt.ismove === true ? 'MOVE' : 'FETCH';
  if ('ClosePortalStmt' in node) return node.ClosePortalStmt.portalname === undefined ? 'CLOSE CURSOR ALL' : 'CLOSE CURSOR';
  const type = nodeType(node);
  return FIXED[type] ?? fallbackTag(type);
}

/** `CreateFooBarStmt` → `CREATE FOO BAR`, for the rare statement kinds not listed. */
function fallbackTag(type: string): string {
  return type
    .replace(/Stmt$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toUpperCase();
}
