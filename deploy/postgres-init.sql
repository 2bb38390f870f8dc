-- The second node's database (the first, packmaker, is POSTGRES_DB); run once when the volume is new.
CREATE DATABASE recycler OWNER connector;
