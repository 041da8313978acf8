-- public.schema_migrations (one row per applied step) replaces the single version number that
-- the releases before numbered migrations kept in public.schema_version. That table stays, frozen
-- at 2, for one purpose: those releases refuse a database whose version is above their own (1),
-- so an old binary started on this database by mistake stops, instead of applying its idempotent
-- schema over it (which would, for one, bring back its create_transfers). Nothing reads it now.
UPDATE public.schema_version SET version = 2, applied_at = now();

-- /readyz, working as the server's role, reads which steps are applied.
GRANT SELECT ON public.schema_migrations TO techbank_app;
