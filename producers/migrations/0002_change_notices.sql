-- Change notices for the API's per-process caches of command-side facts (producers/store/facts.py):
-- every update or delete of an account or a channel claim, committed by any API process, tells every
-- listening process which row changed (NOTIFY is sent at commit, to every session listening then).
-- The payload is "<schema> <table> <key>"; a TRUNCATE names no key (forget the whole table).

CREATE OR REPLACE FUNCTION command_side_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('esports_command_side', TG_TABLE_SCHEMA || ' ' || TG_TABLE_NAME);
    ELSE
        PERFORM pg_notify(
            'esports_command_side',
            TG_TABLE_SCHEMA || ' ' || TG_TABLE_NAME || ' ' || (to_jsonb(OLD) ->> TG_ARGV[0])
        );
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER credentials_changed AFTER UPDATE OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION command_side_changed('user_id');
CREATE TRIGGER credentials_truncated AFTER TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION command_side_changed();
CREATE TRIGGER channel_claims_changed AFTER UPDATE OR DELETE ON channel_claims
    FOR EACH ROW EXECUTE FUNCTION command_side_changed('channel_id');
CREATE TRIGGER channel_claims_truncated AFTER TRUNCATE ON channel_claims
    FOR EACH STATEMENT EXECUTE FUNCTION command_side_changed();
