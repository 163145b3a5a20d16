// The catalog (shared by REST, access, streams, the console and the panel): each project's tables, columns and foreign
// keys as PostgreSQL has them, cached per project. Reloaded when a request names a table, column or relationship the cache lacks (created through the console or a direct connection),
// and dropped by Invalidate() after DDL the platform runs itself.
using System.Collections.Concurrent;
using DbStudio.Core.Projects;
using Npgsql;

namespace DbStudio.Core.Catalog;

public sealed record ColumnInfo(string Name, string Type, uint TypeOid, bool NotNull, string? Default, int? PrimaryKeyPosition,
    bool Generated)
{
    public bool IsPrimaryKey => PrimaryKeyPosition is not null;
    /// <summary>Column privileges of the project's four roles, as PostgreSQL's has_column_privilege answers (RolePrivileges).</summary>
    public RolePrivileges Privileges { get; init; } = RolePrivileges.All;
}

/// <summary>What a privilege check asks for.</summary>
[Flags]
public enum Privilege { None = 0, Select = 1, Insert = 2, Update = 4, Delete = 8 }

/// <summary>
/// Privileges of each of a project's roles (anon, user, user_admin, owner) on one table or column, as PostgreSQL itself
/// decides them (has_table_privilege / has_column_privilege for that role name), loaded with the schema cache: the
/// OpenAPI document and error hints show a caller only what its role may use, with no copy of the access rules here.
/// </summary>
public readonly record struct RolePrivileges(ushort Bits)
{
    public static readonly RolePrivileges All = new(0xFFFF);

    public static RolePrivileges From(Privilege anon, Privilege user, Privilege userAdmin, Privilege owner) =>
        new((ushort)((int)anon | (int)user << 4 | (int)userAdmin << 8 | (int)owner << 12));

    public Privilege Of(RestRole role) => (Privilege)((Bits >> (4 * (int)role)) & 0xF);
    /// <summary>Whether <paramref name="role"/> holds any of <paramref name="wanted"/>.</summary>
    public bool Any(RestRole role, Privilege wanted = Privilege.Select | Privilege.Insert | Privilege.Update | Privilege.Delete) =>
        (Of(role) & wanted) != 0;
}

public sealed class TableInfo
{
    public required string Schema { get; init; }
    public required string Name { get; init; }
    public required uint Oid { get; init; }
    /// <summary>r = table, p = partitioned table, v = view, m = materialized view, f = foreign table.</summary>
    public required char Kind { get; init; }
    public required IReadOnlyList<ColumnInfo> Columns { get; init; }
    public IReadOnlyDictionary<string, ColumnInfo> ByName => _byName ??= Columns.ToDictionary(c => c.Name);
    private Dictionary<string, ColumnInfo>? _byName;
    public IReadOnlyList<ColumnInfo> PrimaryKey => Columns.Where(c => c.IsPrimaryKey).OrderBy(c => c.PrimaryKeyPosition).ToList();
    public bool IsTable => Kind is 'r' or 'p';
    /// <summary>Table privileges of the project's four roles (RolePrivileges).</summary>
    public RolePrivileges Privileges { get; init; } = RolePrivileges.All;

    /// <summary>The columns <paramref name="role"/> holds a privilege on (any of <paramref name="wanted"/>).</summary>
    public IEnumerable<ColumnInfo> ColumnsFor(RestRole role,
        Privilege wanted = Privilege.Select | Privilege.Insert | Privilege.Update) => Columns.Where(c => c.Privileges.Any(role, wanted));

    /// <summary>Whether <paramref name="role"/> may use the table at all: a table privilege or one on any column.</summary>
    public bool VisibleTo(RestRole role) => Privileges.Any(role) || Columns.Any(c => c.Privileges.Any(role));

    public ColumnInfo? Find(string name) => ByName.GetValueOrDefault(name);
}

public sealed class SchemaSnapshot(IReadOnlyDictionary<string, TableInfo> tables, long loadedAt, IReadOnlyList<ForeignKey>? foreignKeys = null)
{
    public IReadOnlyDictionary<string, TableInfo> Tables { get; } = tables;
    public long LoadedAt { get; } = loadedAt;
    /// <summary>Foreign keys between the project's tables (pg_constraint), loaded with the columns.</summary>
    public IReadOnlyList<ForeignKey> ForeignKeys { get; } = foreignKeys ?? [];
    private IReadOnlyDictionary<string, IReadOnlyList<Relationship>>? _relationships;

    /// <summary>The relationships whose origin is <paramref name="table"/> (Relationships.Build, computed once per snapshot).</summary>
    public IReadOnlyList<Relationship> RelationshipsFrom(string table) =>
        (_relationships ??= Relationships.Build(ForeignKeys, Tables)).GetValueOrDefault(table) ?? [];
}

public sealed class SchemaCache(Platform.ProjectServers servers, TimeProvider? clock = null)
{
    /// <summary>Per project while it is in use; dropped after <see cref="IdleAfter"/> without a look (issue 17).</summary>
    private readonly IdleMap<Task<SchemaSnapshot>> _snapshots = new(clock ?? TimeProvider.System, IdleAfter);
    public static readonly TimeSpan IdleAfter = TimeSpan.FromMinutes(10);
    /// <summary>A miss reloads at most this often per project, so a stream of bad names cannot hammer the catalog.</summary>
    private static readonly TimeSpan MinReloadInterval = TimeSpan.FromMilliseconds(250);

    public Task<SchemaSnapshot> GetAsync(string projectId, CancellationToken ct = default)
    {
        var task = _snapshots.GetOrAdd(projectId, id => LoadAsync(id, CancellationToken.None));
        return task.IsFaulted || task.IsCanceled ? Reload(projectId) : task;
    }

    public void Invalidate(string projectId) => _snapshots.Remove(projectId);

    /// <summary>The table, reloading once if the cache does not know it; null if the catalog does not either.</summary>
    public async Task<TableInfo?> FindTableAsync(string projectId, string table, CancellationToken ct = default)
    {
        var snap = await GetAsync(projectId, ct);
        if (snap.Tables.TryGetValue(table, out var t)) return t;
        snap = await ReloadIfOlderAsync(projectId, snap);
        return snap.Tables.GetValueOrDefault(table);
    }

    /// <summary>Reloads when the snapshot is older than the throttle; returns the current snapshot.</summary>
    public async Task<SchemaSnapshot> ReloadIfOlderAsync(string projectId, SchemaSnapshot seen)
    {
        if (Environment.TickCount64 - seen.LoadedAt < MinReloadInterval.TotalMilliseconds) return seen;
        var current = await GetAsync(projectId);
        if (!ReferenceEquals(current, seen)) return current; // someone reloaded already
        return await Reload(projectId);
    }

    private Task<SchemaSnapshot> Reload(string projectId)
    {
        var task = LoadAsync(projectId, CancellationToken.None);
        _snapshots.Set(projectId, task);
        return task;
    }

    // Privileges come from PostgreSQL's own checks evaluated for each project role by name (catalog functions: no
    // project code runs). Per role, 4 bits: SELECT 1, INSERT 2, UPDATE 4, DELETE 8 (tables); SELECT/INSERT/UPDATE (columns).
    private const string CatalogQuery = """
        SELECT c.relname, c.oid, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), array_position(i.indkey::int2[], a.attnum), a.attgenerated <> '',
               (SELECT coalesce(sum(((has_table_privilege(r.oid, c.oid, 'SELECT')::int)
                                  + (has_table_privilege(r.oid, c.oid, 'INSERT')::int * 2)
                                  + (has_table_privilege(r.oid, c.oid, 'UPDATE')::int * 4)
                                  + (has_table_privilege(r.oid, c.oid, 'DELETE')::int * 8)) * (1 << (4 * (k.i::int - 1)))), 0)::int
                FROM unnest($2::text[]) WITH ORDINALITY AS k(name, i) JOIN pg_roles r ON r.rolname = k.name),
               (SELECT coalesce(sum(((has_column_privilege(r.oid, c.oid, a.attnum, 'SELECT')::int)
                                  + (has_column_privilege(r.oid, c.oid, a.attnum, 'INSERT')::int * 2)
                                  + (has_column_privilege(r.oid, c.oid, a.attnum, 'UPDATE')::int * 4)) * (1 << (4 * (k.i::int - 1)))), 0)::int
                FROM unnest($2::text[]) WITH ORDINALITY AS k(name, i) JOIN pg_roles r ON r.rolname = k.name)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ORDER BY c.relname, a.attnum
        """;

    // Foreign keys between tables of the schema, with their column pairs in key order, and whether the referencing
    // columns are exactly a primary key or unique constraint of their table (one-to-one), as PostgREST reads them.
    private const string ForeignKeyQuery = """
        SELECT c.conname, tab.relname, other.relname,
               ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(num, ord)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.ord),
               ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(num, ord)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.ord),
               EXISTS (SELECT 1 FROM pg_constraint u
                       WHERE u.conrelid = c.conrelid AND u.contype IN ('p', 'u') AND u.conkey @> c.conkey AND u.conkey <@ c.conkey)
        FROM pg_constraint c
        JOIN pg_class tab ON tab.oid = c.conrelid
        JOIN pg_class other ON other.oid = c.confrelid
        WHERE c.contype = 'f' AND c.conparentid = 0
          AND c.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND other.relnamespace = c.connamespace
        ORDER BY tab.relname, c.conname
        """;

    private async Task<SchemaSnapshot> LoadAsync(string projectId, CancellationToken ct)
    {
        var schema = ProjectNaming.Schema(projectId);
        var tables = new Dictionary<string, TableInfo>();
        var catalog = (await servers.OfAsync(projectId, ct)).DataSource; // the project's server's catalog
        // The columns first, on a connection given back before the foreign keys are read.
        {
            await using var cmd = catalog.CreateCommand(CatalogQuery);
            cmd.Parameters.Add(new NpgsqlParameter { Value = schema });
            // In RestRole order: anon, user, user_admin, owner.
            cmd.Parameters.Add(new NpgsqlParameter { Value = (string[])[ProjectNaming.AnonRole(projectId), ProjectNaming.UserRole(projectId),
                ProjectNaming.UserAdminRole(projectId), ProjectNaming.OwnerRole(projectId)] });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            string? current = null;
            uint oid = 0;
            var kind = 'r';
            var columns = new List<ColumnInfo>();
            var privileges = RolePrivileges.All;
            void Flush()
            {
                if (current is not null)
                    tables[current] = new TableInfo { Schema = schema, Name = current, Oid = oid, Kind = kind, Columns = columns, Privileges = privileges };
            }
            while (await r.ReadAsync(ct))
            {
                var name = r.GetString(0);
                if (name != current)
                {
                    Flush();
                    current = name;
                    oid = r.GetFieldValue<uint>(1);
                    kind = r.GetChar(2);
                    privileges = new RolePrivileges((ushort)r.GetInt32(10));
                    columns = [];
                }
                columns.Add(new ColumnInfo(r.GetString(3), r.GetString(4), r.GetFieldValue<uint>(5), r.GetBoolean(6),
                    r.IsDBNull(7) ? null : r.GetString(7), r.IsDBNull(8) ? null : r.GetInt32(8), r.GetBoolean(9))
                    { Privileges = new RolePrivileges((ushort)r.GetInt32(11)) });
            }
            Flush();
        }
        return new SchemaSnapshot(tables, Environment.TickCount64, await LoadForeignKeysAsync(catalog, schema, ct));
    }

    /// <summary>The schema's foreign keys, by a command of their own.</summary>
    private static async Task<List<ForeignKey>> LoadForeignKeysAsync(NpgsqlDataSource catalog, string schema, CancellationToken ct)
    {
        var keys = new List<ForeignKey>();
        await using var fkCmd = catalog.CreateCommand(ForeignKeyQuery);
        fkCmd.Parameters.Add(new NpgsqlParameter { Value = schema });
        await using var fk = await fkCmd.ExecuteReaderAsync(ct);
        while (await fk.ReadAsync(ct))
            keys.Add(new ForeignKey(fk.GetString(0), fk.GetString(1), fk.GetString(2), fk.GetFieldValue<string[]>(3),
                fk.GetFieldValue<string[]>(4), fk.GetBoolean(5)));
        return keys;
    }
}
