// The catalog's functions (shared by RPC, the Access tab and OpenAPI): each project's functions as pg_proc has them,
// cached per project like SchemaCache's tables — reloaded when a call names a function the cache lacks, dropped by
// Invalidate() after DDL the platform runs itself. It also keeps the secure default for functions (DESIGN §5): no
// function of a project schema is executable by PUBLIC. PostgreSQL grants EXECUTE to PUBLIC on every new function, so
// whenever a load finds one that PUBLIC may run (made before the default privileges were set, or by a path that
// changed them), the project's owner revokes it — on the project's own login, never the platform's — and the catalog
// is read again. Whom a function is executable by is then only what the owner granted to the anon and user roles.
using System.Collections.Concurrent;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace DbStudio.Core.Catalog;

/// <summary>An input parameter: its name ("" when unnamed), type, and whether a call must name it (no DEFAULT).</summary>
public sealed record FunctionParam(string Name, string Type, bool Required, bool Variadic)
{
    public bool IsArray => Type.EndsWith("[]", StringComparison.Ordinal);
}

/// <summary>What a call answers: one value, rows of columns (a table type, OUT/TABLE columns), or nothing (void).</summary>
public enum FunctionReturn { Scalar, Rows, Void }

public sealed class FunctionInfo
{
    public required string Schema { get; init; }
    public required string Name { get; init; }
    public required uint Oid { get; init; }
    /// <summary>The argument types that name this overload in GRANT/REVOKE (pg_get_function_identity_arguments).</summary>
    public required string IdentityArguments { get; init; }
    public required IReadOnlyList<FunctionParam> Params { get; init; }
    public required string ReturnType { get; init; }
    public required bool ReturnsSet { get; init; }
    public required FunctionReturn Returns { get; init; }
    /// <summary>The columns of the rows it returns (Returns = Rows), as a table's columns, so filters and select apply.</summary>
    public IReadOnlyList<ColumnInfo> Columns { get; init; } = [];
    /// <summary>i = IMMUTABLE, s = STABLE, v = VOLATILE.</summary>
    public required char Volatility { get; init; }
    public required bool SecurityDefiner { get; init; }
    /// <summary>Whether each of the project's roles may execute it, as has_function_privilege answered at load time.</summary>
    public required IReadOnlySet<RestRole> ExecutableBy { get; init; }
    /// <summary>PUBLIC holds EXECUTE (the load revokes it; only a snapshot taken while that failed shows it).</summary>
    public bool PublicExecute { get; init; }
    /// <summary>Callable by name over RPC (PostgREST: no unnamed parameters, or a single json/jsonb/text/xml/bytea one).</summary>
    public bool Callable { get; init; } = true;

    public bool IsReadOnly => Volatility is 'i' or 's';
    public bool ReturnsSingleRow => Returns == FunctionReturn.Rows && !ReturnsSet;
    public string VolatilityName => Volatility switch { 'i' => "IMMUTABLE", 's' => "STABLE", _ => "VOLATILE" };
    /// <summary>"fn(a integer, b text)" for messages.</summary>
    public string Signature => $"{Name}({string.Join(", ", Params.Select(p => (p.Name.Length > 0 ? p.Name + " " : "") + p.Type))})";

    /// <summary>The result's columns as a table, for the planner's filters (RestSql.FilterCondition).</summary>
    public TableInfo AsTable() => _table ??= new TableInfo { Schema = Schema, Name = Name, Oid = Oid, Kind = 'f', Columns = Columns };
    private TableInfo? _table;
}

public sealed class FunctionSnapshot(IReadOnlyDictionary<string, IReadOnlyList<FunctionInfo>> functions, long loadedAt)
{
    /// <summary>By name; a name has several entries when the function is overloaded.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<FunctionInfo>> Functions { get; } = functions;
    public long LoadedAt { get; } = loadedAt;

    public IReadOnlyList<FunctionInfo> Named(string name) => Functions.GetValueOrDefault(name) ?? [];
}

public sealed class FunctionCatalog(Platform.ProjectServers servers, RestConnections connections, ILogger<FunctionCatalog> log,
    TimeProvider? clock = null)
{
    /// <summary>Per project while it is in use; dropped after <see cref="IdleAfter"/> without a look (issue 17).</summary>
    private readonly IdleMap<Task<FunctionSnapshot>> _snapshots = new(clock ?? TimeProvider.System, IdleAfter);
    public static readonly TimeSpan IdleAfter = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan MinReloadInterval = TimeSpan.FromMilliseconds(250);

    public Task<FunctionSnapshot> GetAsync(string projectId, CancellationToken ct = default)
    {
        var task = _snapshots.GetOrAdd(projectId, id => LoadAsync(id, CancellationToken.None));
        return task.IsFaulted || task.IsCanceled ? Reload(projectId) : task;
    }

    public void Invalidate(string projectId) => _snapshots.Remove(projectId);

    /// <summary>A fresh snapshot (after the platform changed grants, or for a page that shows them).</summary>
    public Task<FunctionSnapshot> ReloadAsync(string projectId) => Reload(projectId);

    /// <summary>The overloads of <paramref name="name"/>, reloading once if the cache knows none; empty if the catalog has none either.</summary>
    public async Task<IReadOnlyList<FunctionInfo>> FindAsync(string projectId, string name, CancellationToken ct = default)
    {
        var snap = await GetAsync(projectId, ct);
        if (snap.Functions.TryGetValue(name, out var f)) return f;
        snap = await ReloadIfOlderAsync(projectId, snap);
        return snap.Named(name);
    }

    /// <summary>Reloads when the snapshot is older than the throttle; returns the current snapshot.</summary>
    public async Task<FunctionSnapshot> ReloadIfOlderAsync(string projectId, FunctionSnapshot seen)
    {
        if (Environment.TickCount64 - seen.LoadedAt < MinReloadInterval.TotalMilliseconds) return seen;
        var current = await GetAsync(projectId);
        if (!ReferenceEquals(current, seen)) return current;
        return await Reload(projectId);
    }

    private Task<FunctionSnapshot> Reload(string projectId)
    {
        var task = LoadAsync(projectId, CancellationToken.None);
        _snapshots.Set(projectId, task);
        return task;
    }

    // Catalog functions only (format_type, has_function_privilege, aclexplode): no project code runs on the platform's
    // login. Input parameters come from proallargtypes/proargmodes (IN, INOUT, VARIADIC), output columns from OUT/TABLE
    // parameters or the returned table type. Like PostgREST: plain functions (not procedures or aggregates), no trigger
    // functions, and no function with unnamed parameters unless it has exactly one of json, jsonb, text, xml or bytea.
    private const string FunctionsQuery = """
        SELECT p.oid, p.proname, pg_get_function_identity_arguments(p.oid), p.pronargs, p.pronargdefaults,
               coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargmodes::text[], p.proargnames,
               (SELECT array_agg(format_type(x.t, NULL) ORDER BY x.i) FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) WITH ORDINALITY x(t, i)),
               format_type(p.prorettype, NULL), p.proretset, t.typtype, p.prorettype = 'void'::regtype,
               (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped),
               (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped),
               (SELECT array_agg(a.atttypid ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped),
               p.provolatile, p.prosecdef,
               has_function_privilege($2, p.oid, 'EXECUTE'), has_function_privilege($3, p.oid, 'EXECUTE'),
               has_function_privilege($4, p.oid, 'EXECUTE'), has_function_privilege($5, p.oid, 'EXECUTE'),
               EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) e WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE')
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        JOIN pg_type t ON t.oid = p.prorettype
        WHERE n.nspname = $1 AND p.prokind = 'f' AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
        ORDER BY p.proname, p.oid
        """;

    /// <summary>
    /// Whether the owner's default privileges still give PUBLIC EXECUTE on new functions: PostgreSQL's built-in default
    /// (no global entry taking it away), or an entry for the project's schema that grants it.
    /// </summary>
    public const string DefaultsOpenQuery = """
        SELECT NOT EXISTS (SELECT 1 FROM pg_default_acl d JOIN pg_roles r ON r.oid = d.defaclrole
                           WHERE r.rolname = $1 AND d.defaclnamespace = 0 AND d.defaclobjtype = 'f'
                             AND NOT EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) e WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE'))
            OR EXISTS (SELECT 1 FROM pg_default_acl d JOIN pg_roles r ON r.oid = d.defaclrole JOIN pg_namespace n ON n.oid = d.defaclnamespace
                       WHERE r.rolname = $1 AND n.nspname = $2 AND d.defaclobjtype = 'f'
                         AND EXISTS (SELECT 1 FROM aclexplode(d.defaclacl) e WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE'))
        """;

    /// <summary>Routines of the schema (functions and procedures of any kind) that PUBLIC may execute.</summary>
    private const string ExposedQuery = """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = $1 AND p.prokind IN ('f', 'p')
          AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) e WHERE e.grantee = 0 AND e.privilege_type = 'EXECUTE')
        """;

    private async Task<FunctionSnapshot> LoadAsync(string projectId, CancellationToken ct)
    {
        var (functions, exposed, defaultsOpen) = await ReadAsync(projectId, ct);
        if (exposed.Count > 0 || defaultsOpen)
        {
            try
            {
                await connections.AsOwnerAsync(projectId, async conn =>
                {
                    await using var cmd = new NpgsqlCommand(SecureDefaultsSql(ProjectNaming.Schema(projectId), exposed, defaultsOpen), conn);
                    return await cmd.ExecuteNonQueryAsync(ct);
                }, ct);
                (functions, _, _) = await ReadAsync(projectId, ct);
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                // The snapshot keeps PublicExecute: nobody is granted anything by this; PostgreSQL still decides a call.
                log.LogWarning("Could not revoke PUBLIC EXECUTE on functions of project {Project}: {Message}", projectId, e.Message);
            }
        }
        return new FunctionSnapshot(functions, Environment.TickCount64);
    }

    /// <summary>
    /// Run as the project's owner: no PUBLIC EXECUTE on the given functions, nor on functions the owner makes from now on.
    /// (REVOKE on a function dropped meanwhile fails the batch; the next load tries again.)
    /// </summary>
    public static string SecureDefaultsSql(string schema, IEnumerable<(string Name, string IdentityArguments)> exposed, bool defaults)
    {
        // The argument list is PostgreSQL's own text (pg_get_function_identity_arguments quotes names and types).
        var sql = string.Concat(exposed.Select(f =>
            $"REVOKE EXECUTE ON ROUTINE {SqlText.Qualified(schema, f.Name)}({f.IdentityArguments}) FROM PUBLIC;\n"));
        if (defaults)
            sql += "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;\n"
                   + $"ALTER DEFAULT PRIVILEGES IN SCHEMA {SqlText.Ident(schema)} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;\n";
        return sql;
    }

    private async Task<(Dictionary<string, IReadOnlyList<FunctionInfo>>, List<(string, string)> Exposed, bool DefaultsOpen)> ReadAsync(
        string projectId, CancellationToken ct)
    {
        var schema = ProjectNaming.Schema(projectId);
        var result = new Dictionary<string, List<FunctionInfo>>();
        await using var batch = (await servers.OfAsync(projectId, ct)).DataSource.CreateBatch(); // the project's server's catalog
        var fns = new NpgsqlBatchCommand(FunctionsQuery);
        foreach (var v in new[] { schema, ProjectNaming.AnonRole(projectId), ProjectNaming.UserRole(projectId),
                     ProjectNaming.UserAdminRole(projectId), ProjectNaming.OwnerRole(projectId) })
            fns.Parameters.Add(new NpgsqlParameter { Value = v });
        batch.BatchCommands.Add(fns);
        var defaults = new NpgsqlBatchCommand(DefaultsOpenQuery)
        {
            Parameters = { new NpgsqlParameter { Value = ProjectNaming.OwnerRole(projectId) }, new NpgsqlParameter { Value = schema } },
        };
        batch.BatchCommands.Add(defaults);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(ExposedQuery) { Parameters = { new NpgsqlParameter { Value = schema } } });
        await using var r = await batch.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var f = Parse(schema, r);
            if (!result.TryGetValue(f.Name, out var list)) result[f.Name] = list = [];
            list.Add(f);
        }
        await r.NextResultAsync(ct);
        await r.ReadAsync(ct);
        var open = r.GetBoolean(0);
        await r.NextResultAsync(ct);
        var exposed = new List<(string, string)>();
        while (await r.ReadAsync(ct)) exposed.Add((r.GetString(0), r.GetString(1)));
        return (result.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<FunctionInfo>)kv.Value), exposed, open);
    }

    private static FunctionInfo Parse(string schema, NpgsqlDataReader r)
    {
        var pronargs = r.GetInt16(3);
        var nDefaults = r.GetInt16(4);
        var types = r.GetFieldValue<uint[]>(5);
        var modes = r.IsDBNull(6) ? null : r.GetFieldValue<string[]>(6);
        var names = r.IsDBNull(7) ? null : r.GetFieldValue<string[]>(7);
        var typeNames = r.IsDBNull(8) ? [] : r.GetFieldValue<string[]>(8);
        var inputs = new List<FunctionParam>();
        var outs = new List<ColumnInfo>();
        for (var i = 0; i < types.Length; i++)
        {
            var mode = modes?[i] ?? "i";
            var name = names is not null && i < names.Length ? names[i] : "";
            var type = i < typeNames.Length ? typeNames[i] : "unknown";
            if (mode is "i" or "b" or "v")
            {
                var index = inputs.Count; // input parameters with DEFAULTs are the last pronargdefaults ones
                inputs.Add(new FunctionParam(name, type, index < pronargs - nDefaults, mode == "v"));
            }
            if (mode is "o" or "b" or "t")
                outs.Add(new ColumnInfo(name.Length > 0 ? name : "column" + (outs.Count + 1), type, types[i], false, null, null, false));
        }
        // Unnamed parameters cannot be passed by name: PostgREST calls such a function only when it has exactly one, of a
        // type that takes the whole body.
        var unnamed = inputs.Count(p => p.Name.Length == 0);
        var callable = !(unnamed > 1 || unnamed == 1 && (inputs.Count > 1 || inputs[0].Type is not ("json" or "jsonb" or "text" or "xml" or "bytea")));
        var retSet = r.GetBoolean(10);
        var typtype = r.GetChar(11);
        var isVoid = r.GetBoolean(12);
        var returns = FunctionReturn.Scalar;
        if (outs.Count > 0) returns = FunctionReturn.Rows;
        else if (typtype == 'c' && !r.IsDBNull(13))
        {
            var colNames = r.GetFieldValue<string[]>(13);
            var colTypes = r.GetFieldValue<string[]>(14);
            var colOids = r.GetFieldValue<uint[]>(15);
            for (var i = 0; i < colNames.Length; i++) outs.Add(new ColumnInfo(colNames[i], colTypes[i], colOids[i], false, null, null, false));
            returns = FunctionReturn.Rows;
        }
        else if (isVoid && !retSet) returns = FunctionReturn.Void;
        var exec = new HashSet<RestRole>();
        if (r.GetBoolean(18)) exec.Add(RestRole.Anon);
        if (r.GetBoolean(19)) exec.Add(RestRole.User);
        if (r.GetBoolean(20)) exec.Add(RestRole.UserAdmin);
        if (r.GetBoolean(21)) exec.Add(RestRole.Owner);
        return new FunctionInfo
        {
            Schema = schema, Name = r.GetString(1), Oid = r.GetFieldValue<uint>(0), IdentityArguments = r.GetString(2), Params = inputs,
            ReturnType = r.GetString(9), ReturnsSet = retSet, Returns = returns, Columns = outs, Volatility = r.GetChar(16),
            SecurityDefiner = r.GetBoolean(17), ExecutableBy = exec, PublicExecute = r.GetBoolean(22), Callable = callable,
        };
    }
}
