// A project's roles and schema live on its server, its metadata in the platform database. When they are one database
// (a project on "main") the server's statements join the platform transaction — all or nothing, as before there were
// several servers; on another server they run in a transaction of their own there, which the caller commits in the
// order that leaves the least behind when the second commit fails.
using DbStudio.Core.Platform;
using Npgsql;

namespace DbStudio.Core.Projects;

internal sealed class ServerTransaction : IAsyncDisposable
{
    private readonly bool _own;

    private ServerTransaction(NpgsqlConnection connection, NpgsqlTransaction transaction, bool own)
    {
        Connection = connection;
        Transaction = transaction;
        _own = own;
    }

    /// <summary>The platform role's connection on the project's server, in a transaction.</summary>
    public NpgsqlConnection Connection { get; }
    public NpgsqlTransaction Transaction { get; }

    public static async Task<ServerTransaction> BeginAsync(DbServer server, NpgsqlConnection platform, NpgsqlTransaction platformTx,
        CancellationToken ct)
    {
        if (server.IsPlatform) return new ServerTransaction(platform, platformTx, own: false);
        var conn = await server.DataSource.OpenConnectionAsync(ct);
        try { return new ServerTransaction(conn, await conn.BeginTransactionAsync(ct), own: true); }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    /// <summary>Commits the server's work (nothing to do when it is the platform transaction: its caller commits that).</summary>
    public Task CommitAsync(CancellationToken ct) => _own ? Transaction.CommitAsync(ct) : Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (!_own) return;
        await Transaction.DisposeAsync();
        await Connection.DisposeAsync();
    }
}
