-- The service's two PostgreSQL roles and its database: run once by an administrator, before the
-- first migration. A superuser will do, and so will the admin login of a managed PostgreSQL
-- (a role with CREATEROLE and CREATEDB, not a superuser). With psql:
--
--   psql "$ADMIN_URL" -X -v ON_ERROR_STOP=1 -v database=loyalty \
--     -v owner_role=loyalty_owner -v owner_password="$OWNER_PASSWORD" \
--     -v app_role=loyalty_app -v app_password="$APP_PASSWORD" \
--     -f migrations/bootstrap_roles.sql
--
-- owner_role owns the database, its schema and everything the migrations create; only the
-- migrations log in as it (MIGRATION_DATABASE_URL). app_role is what the API and the worker log
-- in as (DATABASE_URL); the migrations grant it what the service needs and no more (migration
-- 0009). Neither is a superuser, creates roles or databases, replicates or bypasses row security.
--
-- Running it again changes nothing that is already in place (passwords included: ALTER ROLE
-- changes one). No password (or an empty one) means none, for trust or certificate
-- authentication.
-- `make run` and the tests run this same file against their embedded PostgreSQL.
--
-- Objects in the database's public schema owned by the login running this (tables an earlier
-- release migrated as the administrator) are handed to owner_role, so the migrations can go on
-- as the owner.
--
-- Every variable has a default: database loyalty, roles loyalty_owner and loyalty_app, no
-- passwords.

\set QUIET on
\if :{?database}
\else
\set database loyalty
\endif
\if :{?owner_role}
\else
\set owner_role loyalty_owner
\endif
\if :{?app_role}
\else
\set app_role loyalty_app
\endif
\if :{?owner_password}
\else
\set owner_password ''
\endif
\if :{?app_password}
\else
\set app_password ''
\endif

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS PASSWORD %L', :'owner_role', NULLIF(:'owner_password', ''))
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner_role')
\gexec

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS PASSWORD %L', :'app_role', NULLIF(:'app_password', ''))
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_role')
\gexec

-- Handing objects to owner_role takes membership in it. A superuser has it already; a
-- CREATEROLE admin holds ADMIN OPTION on the roles it created (PostgreSQL 16 and later) and
-- grants itself membership here.
SELECT format('GRANT %I TO %I', :'owner_role', current_user)
WHERE NOT pg_has_role(current_user, :'owner_role', 'MEMBER')
\gexec

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner_role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec

SELECT format('ALTER DATABASE %I OWNER TO %I', :'database', :'owner_role')
\gexec

-- Nobody but the two roles connects; nobody makes temporary objects (the application role
-- makes no object at all).
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app_role";

\connect :"database"

SELECT set_config('loyalty.owner_role', :'owner_role', false) AS owner_role_setting
\gset

-- The schema belongs to the owner, and nobody else creates in it (PostgreSQL 14 and older let
-- everyone). Where the administrator may not take the schema over (public owned by the
-- platform's own superuser on an old version), a notice says so and migration 0009 refuses to
-- go on while the application role could create objects.
DO $$
BEGIN
    EXECUTE format('ALTER SCHEMA public OWNER TO %I', current_setting('loyalty.owner_role'));
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'could not take over schema public (%); its owner must run: '
        'REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT CREATE ON SCHEMA public TO %',
        SQLERRM, quote_ident(current_setting('loyalty.owner_role'));
END;
$$;

-- Objects of the public schema owned by this login go to the owner (not extension members;
-- identity sequences and indexes follow their tables, a table's row type follows the table).
DO $$
DECLARE
    new_owner text := current_setting('loyalty.owner_role');
    statement text;
BEGIN
    FOR statement IN
        SELECT format('ALTER %s %s OWNER TO %I',
                      CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                     WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                      c.oid::regclass, new_owner)
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relowner = current_user::regrole
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype IN ('a', 'i', 'e'))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, new_owner)
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.proowner = current_user::regrole
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                            AND d.deptype = 'e')
        UNION ALL
        SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, new_owner)
        FROM pg_type t
        LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typnamespace = 'public'::regnamespace AND t.typowner = current_user::regrole
          AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND c.relkind = 'c'))
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                            AND d.deptype = 'e')
    LOOP
        EXECUTE statement;
    END LOOP;
END;
$$;
