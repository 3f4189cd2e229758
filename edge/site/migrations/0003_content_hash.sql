-- An event's content hash is PostgreSQL's: the sha256 of its stored jsonb without the
-- delivery flag `historical`, as jsonb prints it (keys in one order, no insignificant
-- white space), so two encodings of one event hash alike. The ingest used to hash a
-- canonical Python encoding of every message it classified; computed here, it costs the
-- register nothing per message, and it is only compared when an event_id comes again.
CREATE FUNCTION event_content_sha256(body jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT encode(sha256(convert_to((body - 'historical')::text, 'UTF8')), 'hex') $$;

UPDATE events SET content_sha256 = event_content_sha256(body);
