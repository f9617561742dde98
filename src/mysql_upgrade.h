/* Generated from sql/mysql-upgrade.sql by make; do not edit. */
static const char mysql_upgrade[] =
	"-- @version 2\n"
	"ALTER TABLE GroupUser ADD COLUMN IF NOT EXISTS admin TINYINT NOT NULL DEFAULT 0;\n"
	"ALTER TABLE GroupUser ADD COLUMN IF NOT EXISTS joinedat BIGINT NOT NULL DEFAULT 0;\n"
	"-- @version 3\n"
	;
