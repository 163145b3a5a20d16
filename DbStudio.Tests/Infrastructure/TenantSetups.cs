// Setups the attack tests share: a project whose table anonymous callers may read, console results without errors, a
// stream read up to a marker row, and a project whose embeds multiply (one team, 1,000 people).
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;

namespace DbStudio.Tests.Infrastructure;

internal static class TenantSetups
{
    /// <summary>Every console statement ran without an error.</summary>
    public static void NoErrors(JsonElement[] results) =>
        Assert.All(results, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));

    /// <summary>Sets a table's Access switches: anonymous callers may read it (and insert, when asked), nothing else.</summary>
    public static async Task AllowAnonAsync(HttpClient owner, ProjectInfo p, string table, bool insert = false) =>
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/{table}/access", new
        {
            anon_select = true, anon_insert = insert, auth_insert = false, auth_select_own = false, auth_update_own = false,
            auth_delete_own = false, user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();

    /// <summary>A project with the tables <paramref name="createSql"/> makes, <paramref name="table"/> readable by anonymous callers.</summary>
    public static async Task<(HttpClient Owner, ProjectInfo P)> AnonReadableAsync(this TestApp app, string name, string createSql,
        string table, bool anonInsert = false)
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, name);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, createSql));
        await AllowAnonAsync(owner, p, table, anonInsert);
        return (owner, p);
    }

    /// <summary>The stream's events up to the one whose <paramref name="column"/> is <paramref name="marker"/>, that one included.</summary>
    public static async Task<List<SseEvent>> UpToMarkerAsync(SseClient s, string column, string marker)
    {
        var seen = new List<SseEvent>();
        while (true)
        {
            var e = await s.NextAsync(TimeSpan.FromSeconds(60));
            seen.Add(e);
            if (e.RecordText(column) == marker) return seen;
        }
    }

    /// <summary>
    /// One team of 1,000 people, both readable (and people insertable) by anonymous callers, and a select of
    /// <paramref name="aliases"/> aliased embeds of the team's people under each person: the answer multiplies.
    /// </summary>
    public static async Task<(HttpClient Owner, ProjectInfo P, string Embeds)> FanOutAsync(this TestApp app, string name, int aliases)
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, name);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, """
            create table teams (id int primary key);
            create table people (id int primary key, team_id int references teams);
            insert into teams values (1);
            insert into people select g, 1 from generate_series(1, 1000) g;
            """));
        await AllowAnonAsync(owner, p, "teams");
        await AllowAnonAsync(owner, p, "people", insert: true);
        return (owner, p, string.Join(",", Enumerable.Range(1, aliases).Select(i => $"t{i}:teams(people(id))")));
    }

    private static readonly Lock CapGate = new();
    private static int _lowCapUsers;
    private static long _savedCap;

    /// <summary>
    /// Lowers Rest:MaxResponseBytes for the scope (shared by the tests that overlap; restored by the last to leave): an
    /// answer past it is then small enough for PostgreSQL to make quickly on a slow machine.
    /// </summary>
    public static IDisposable LowResponseCap(this TestApp app, long bytes)
    {
        var rest = app.Service<Microsoft.Extensions.Options.IOptions<DbStudio.Core.DbStudioOptions>>().Value.Rest;
        lock (CapGate)
        {
            if (_lowCapUsers++ == 0) (_savedCap, rest.MaxResponseBytes) = (rest.MaxResponseBytes, bytes);
        }
        return new Restore(() =>
        {
            lock (CapGate)
                if (--_lowCapUsers == 0) rest.MaxResponseBytes = _savedCap;
        });
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }
}
