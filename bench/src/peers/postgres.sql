-- marquee-peer-bench's PostgreSQL schema, made afresh in its own schema at every start (run
-- with search_path set to it). Holds, confirms and releases are functions: one round trip and
-- one transaction (autocommit) per operation, as Redis runs one Lua script per operation.

CREATE TABLE shows (show_id bigserial PRIMARY KEY, title text NOT NULL, capacity int NOT NULL);
-- rows: the category's rows in layout order (the best-available search walks them in turn).
-- A hold locks its section's row (SELECT ... FOR UPDATE): holds of one section are serialised,
-- as a Raft group serialises a show.
CREATE TABLE sections (
    show_id bigint NOT NULL, category text NOT NULL, capacity int NOT NULL, rows int[] NOT NULL,
    PRIMARY KEY (show_id, category));
-- status: a = available, h = held (until expires_at_ms), s = sold. Half-full pages leave room
-- for updates in place (HOT): no index covers the columns holds change.
CREATE TABLE seats (
    show_id bigint NOT NULL, seat_id text NOT NULL, category text NOT NULL,
    row_no int NOT NULL, seat_no int NOT NULL, block int NOT NULL,
    status "char" NOT NULL DEFAULT 'a', hold_id bigint, expires_at_ms bigint,
    PRIMARY KEY (show_id, seat_id)) WITH (fillfactor = 50);
CREATE INDEX seats_by_place ON seats (show_id, category, row_no, seat_no);
CREATE SEQUENCE hold_ids;
CREATE TABLE holds (
    hold_id bigint PRIMARY KEY, show_id bigint NOT NULL, user_id text NOT NULL,
    seats text[] NOT NULL, expires_at_ms bigint NOT NULL, state text NOT NULL DEFAULT 'held')
    WITH (fillfactor = 70);
CREATE TABLE bookings (
    booking_id bigserial PRIMARY KEY, hold_id bigint NOT NULL UNIQUE, show_id bigint NOT NULL,
    user_id text NOT NULL, seats text[] NOT NULL, status text NOT NULL);
CREATE INDEX bookings_by_show ON bookings (show_id);

-- Best available: the first row of the section (layout order) with p_party adjacent available
-- seats in one aisle-free block, leftmost first; a held seat past its expiry is available.
-- No row: the section's available seats in o_available. No section: no row returned. In a row
-- the available seats form islands (seat number minus rank is constant along a run) per block;
-- the rows are tried in turn (nested loop over unnest, stopped by LIMIT 1). MATERIALIZED: the
-- pick runs once (inlined into the UPDATE's join it ran again for every seat row).
CREATE FUNCTION hold_best(p_show bigint, p_category text, p_party int, p_now bigint,
                          p_expires bigint, p_user text)
RETURNS TABLE (o_hold bigint, o_seats text[], o_available bigint) LANGUAGE plpgsql AS $$
DECLARE
    h bigint;
    s text[];
BEGIN
    PERFORM 1 FROM sections sec
        WHERE sec.show_id = p_show AND sec.category = p_category FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    h := nextval('hold_ids');
    WITH pick AS MATERIALIZED (
        SELECT r.row_no, i.first
        FROM sections sec
        CROSS JOIN LATERAL unnest(sec.rows) AS r(row_no)
        CROSS JOIN LATERAL (
            SELECT min(f.seat_no) AS first
            FROM (SELECT st.block, st.seat_no,
                         st.seat_no - row_number() OVER (PARTITION BY st.block
                                                         ORDER BY st.seat_no) AS island
                  FROM seats st
                  WHERE st.show_id = p_show AND st.category = p_category
                    AND st.row_no = r.row_no
                    AND (st.status = 'a' OR (st.status = 'h' AND st.expires_at_ms <= p_now))) f
            GROUP BY f.block, f.island HAVING count(*) >= p_party
            ORDER BY first LIMIT 1
        ) i
        WHERE sec.show_id = p_show AND sec.category = p_category
        LIMIT 1
    ), claimed AS (
        UPDATE seats st SET status = 'h', hold_id = h, expires_at_ms = p_expires
        FROM pick
        WHERE st.show_id = p_show AND st.category = p_category AND st.row_no = pick.row_no
          AND st.seat_no >= pick.first AND st.seat_no < pick.first + p_party
          AND (st.status = 'a' OR (st.status = 'h' AND st.expires_at_ms <= p_now))
        RETURNING st.seat_no, st.seat_id
    )
    SELECT array_agg(c.seat_id ORDER BY c.seat_no) INTO s FROM claimed c;
    IF s IS NULL THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text[], count(*) FROM seats st
            WHERE st.show_id = p_show AND st.category = p_category
              AND (st.status = 'a' OR (st.status = 'h' AND st.expires_at_ms <= p_now));
        RETURN;
    END IF;
    IF cardinality(s) <> p_party THEN
        -- Only if a seat changed between the pick and the update; undoes the statement.
        RAISE EXCEPTION 'seats taken meanwhile' USING ERRCODE = 'MB001';
    END IF;
    INSERT INTO holds (hold_id, show_id, user_id, seats, expires_at_ms)
        VALUES (h, p_show, p_user, s, p_expires);
    RETURN QUERY SELECT h, s, NULL::bigint;
END $$;

-- Confirm (after the in-process payment): no row if the hold is not p_user's, not held or
-- expired; error MB002 (all undone) if one of its seats is no longer its own.
CREATE FUNCTION confirm_hold(p_hold bigint, p_user text, p_now bigint)
RETURNS TABLE (o_booking bigint, o_seats text[]) LANGUAGE plpgsql AS $$
DECLARE
    v_show bigint;
    v_seats text[];
    n bigint;
    b bigint;
BEGIN
    UPDATE holds hd SET state = 'confirmed'
        WHERE hd.hold_id = p_hold AND hd.user_id = p_user AND hd.state = 'held'
          AND hd.expires_at_ms > p_now
        RETURNING hd.show_id, hd.seats INTO v_show, v_seats;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE seats st SET status = 's', expires_at_ms = NULL
        WHERE st.show_id = v_show AND st.seat_id = ANY(v_seats) AND st.hold_id = p_hold
          AND st.status = 'h';
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> cardinality(v_seats) THEN
        RAISE EXCEPTION 'hold expired meanwhile' USING ERRCODE = 'MB002';
    END IF;
    INSERT INTO bookings (hold_id, show_id, user_id, seats, status)
        VALUES (p_hold, v_show, p_user, v_seats, 'confirmed') RETURNING booking_id INTO b;
    RETURN QUERY SELECT b, v_seats;
END $$;

-- Release: false if the hold is not p_user's or not held; its seats still its own go back.
CREATE FUNCTION release_hold(p_hold bigint, p_user text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_show bigint;
    v_seats text[];
BEGIN
    UPDATE holds hd SET state = 'released'
        WHERE hd.hold_id = p_hold AND hd.user_id = p_user AND hd.state = 'held'
        RETURNING hd.show_id, hd.seats INTO v_show, v_seats;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE seats st SET status = 'a', hold_id = NULL, expires_at_ms = NULL
        WHERE st.show_id = v_show AND st.seat_id = ANY(v_seats) AND st.hold_id = p_hold
          AND st.status = 'h';
    RETURN true;
END $$;
