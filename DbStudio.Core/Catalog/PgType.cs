// The built-in PostgreSQL types the platform treats specially, by name: their OIDs as pg_type has them (fixed for
// built-in types, PostgreSQL's pg_type.dat). Code compares a column's TypeOid with PgType.Jsonb, never with 3802.
namespace DbStudio.Core.Catalog;

public static class PgType
{
    public const uint Bool = 16;
    public const uint Bytea = 17;
    public const uint Name = 19;
    public const uint Int8 = 20;
    public const uint Int2 = 21;
    public const uint Int4 = 23;
    public const uint Text = 25;
    public const uint Oid = 26;
    public const uint Json = 114;
    public const uint Float4 = 700;
    public const uint Float8 = 701;
    public const uint Bpchar = 1042;
    public const uint Varchar = 1043;
    public const uint Date = 1082;
    public const uint Time = 1083;
    public const uint Timestamp = 1114;
    public const uint Timestamptz = 1184;
    public const uint Interval = 1186;
    public const uint Timetz = 1266;
    public const uint Numeric = 1700;
    public const uint Uuid = 2950;
    public const uint TsVector = 3614;
    public const uint Jsonb = 3802;

    /// <summary>json or jsonb: the value is JSON itself.</summary>
    public static bool IsJson(uint oid) => oid is Json or Jsonb;
}
