-- public.schema_migrations (one row per applied step) replaces the single version number that
-- the releases before numbered migrations kept in public.schema_version.
DROP TABLE public.schema_version;

-- /readyz, working as the server's role, reads which steps are applied.
GRANT SELECT ON public.schema_migrations TO techbank_app;
