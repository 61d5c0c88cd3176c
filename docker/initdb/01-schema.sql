-- The demo schema, created on every shard at its first start (postgres image: /docker-entrypoint-initdb.d).
-- pgshard.yaml names users and orders as sharded tables and countries as a reference table.
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO countries VALUES ('de', 'Germany'), ('fr', 'France'), ('jp', 'Japan'), ('br', 'Brazil'), ('us', 'United States'), ('in', 'India');
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text, country text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigint NOT NULL, user_id bigint NOT NULL, amount numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (user_id, id));
