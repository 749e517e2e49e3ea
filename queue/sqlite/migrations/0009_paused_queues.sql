-- Paused queues: their consumers (endpoints, distributors) receive and move
-- nothing from them until resumed. A queue's name, within this database.
CREATE TABLE ferry_paused (
    queue     TEXT   NOT NULL PRIMARY KEY,
    paused_at BIGINT NOT NULL
);
