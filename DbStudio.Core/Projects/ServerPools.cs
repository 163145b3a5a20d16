// One ProjectConnectionPool per PostgreSQL server (issue 17): each server has its own connection budget
// (DbStudio:Servers:Pool:{name}:MaxConnections, else Rest:MaxConnections), so a busy server never closes another's idle
// connections to make room, and a server's slots are counted where they are spent. "main"'s pool is the registered
// ProjectConnectionPool; the others are made on first use.
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using DbStudio.Core.Platform;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Projects;

public sealed class ServerPools(ProjectConnectionPool main, IOptions<DbStudioOptions> options, TimeProvider clock) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, ProjectConnectionPool> _others = new();
    /// <summary>Which pool a connection of another server than "main" was rented from (it goes back there).</summary>
    private readonly ConditionalWeakTable<NpgsqlConnection, ProjectConnectionPool> _rentedFrom = new();

    /// <summary>The pool of <paramref name="server"/>'s project connections.</summary>
    public ProjectConnectionPool For(DbServer server) => server.IsPlatform ? main
        : _others.GetOrAdd(server.Name, _ => new ProjectConnectionPool(options, clock, server.MaxConnections));

    private IEnumerable<ProjectConnectionPool> All => _others.IsEmpty ? [main] : [main, .. _others.Values];

    /// <summary>Open physical connections of every server's pool.</summary>
    public int OpenCount => All.Sum(p => p.OpenCount);

    /// <summary>A connection of <paramref name="key"/> on <paramref name="server"/>; give it back with <see cref="Return"/>.</summary>
    public async ValueTask<NpgsqlConnection> RentAsync(DbServer server, PoolKey key, PoolPolicy policy, CancellationToken ct)
    {
        var pool = For(server);
        var conn = await pool.RentAsync(key, policy, ct);
        if (!ReferenceEquals(pool, main)) _rentedFrom.AddOrUpdate(conn, pool);
        return conn;
    }

    public void Return(NpgsqlConnection conn, bool reusable = true)
    {
        if (_rentedFrom.TryGetValue(conn, out var pool))
        {
            _rentedFrom.Remove(conn);
            pool.Return(conn, reusable);
        }
        else main.Return(conn, reusable);
    }

    /// <summary>Closes the project's idle connections and retires its busy ones, on every server (deleted, moved, new password).</summary>
    public void Forget(string project, Func<PoolKey, bool>? which = null)
    {
        foreach (var pool in All) pool.Forget(project, which);
    }

    public void ClearAll()
    {
        foreach (var pool in All) pool.ClearAll();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var pool in _others.Values) await pool.DisposeAsync();
    }
}
