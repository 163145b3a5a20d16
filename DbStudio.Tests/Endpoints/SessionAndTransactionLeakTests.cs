// Attacks from a hostile-tenant review (session 11): what the stream shows of row versions inside a transaction, and
// what an anonymous request reads of session state a signed-in user's request left on the shared REST login.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using static DbStudio.Tests.Infrastructure.TenantSetups;

namespace DbStudio.Tests.Endpoints;

public class SessionAndTransactionLeakTests(TestApp app)
{
    private static async Task<HttpResponseMessage> SendAsync(Uri baseUrl, HttpMethod method, string path, string? bearer, string? apikey,
        object? body = null)
    {
        using var http = new HttpClient { BaseAddress = baseUrl };
        var req = new HttpRequestMessage(method, path);
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (apikey is not null) req.Headers.Add("apikey", apikey);
        req.Headers.Add("Prefer", "return=representation");
        if (body is not null) req.Content = JsonContent.Create(body);
        return await http.SendAsync(req);
    }

    /// <summary>
    /// DESIGN §6: an event reaches a subscriber only if GET with the same credential at that moment would return that row.
    /// A table without a primary key is judged on the log's row image — which is the row as it was at that statement,
    /// inside the writer's transaction. A value that is overwritten, or a row that is hidden, before the transaction
    /// commits was never returned by any GET, yet the anon stream sends it.
    /// </summary>
    [Fact]
    public async Task A_stream_on_a_table_without_primary_key_sends_row_versions_no_GET_ever_returned()
    {
        var (owner, p) = await app.AnonReadableAsync("no pk stream", "create table posts (title text, secret text, public boolean not null default true)", "posts");
        // Anonymous callers see public rows only.
        var policy = await TestApp.SqlAsync(owner, p.Id,
            $"create policy only_public on posts as restrictive for select to {ProjectNaming.AnonRole(p.Id)} using (public)");
        Assert.False(policy[0].TryGetProperty("error", out var perr) && perr.ValueKind == JsonValueKind.Object, policy[0].ToString());

        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/posts/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);

        // One transaction each: the secret is redacted, and the draft is hidden, before anybody could read them.
        var r = await TestApp.SqlAsync(owner, p.Id, """
            do $$ begin
              insert into posts (title, secret) values ('redacted before commit', 'TOP SECRET: salary 250k');
              update posts set secret = 'redacted' where title = 'redacted before commit';
              insert into posts (title, secret) values ('hidden before commit', 'DRAFT never published');
              update posts set public = false where title = 'hidden before commit';
            end $$;
            -- a version too large to stream (over 1 MiB) in between: the row is still followed through it
            do $$ begin
              insert into posts (title, secret) values ('grown before commit', 'SECRET before it grew');
              update posts set secret = repeat('x', 1200000) where title = 'grown before commit';
            end $$;
            insert into posts (title, secret) values ('marker', 'm');
            """);
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));

        // What GET with the same credential returns: the redacted row and the marker, never the secret or the draft.
        var get = await SendAsync(app.BaseUrl, HttpMethod.Get, $"/db/{p.Id}/rest/posts", null, p.AnonKey);
        var getBody = await get.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.DoesNotContain("TOP SECRET", getBody);
        Assert.DoesNotContain("DRAFT", getBody);

        // The stream, up to the marker.
        var seen = new List<string>();
        while (true)
        {
            var e = await s.NextAsync(TimeSpan.FromSeconds(20));
            seen.Add(e.Data.GetRawText());
            if (e.RecordText("title") == "marker") break;
        }
        var all = string.Join("\n", seen);
        Assert.False(all.Contains("TOP SECRET") || all.Contains("DRAFT never published") || all.Contains("SECRET before it grew"),
            "anon stream events:\n" + all);
    }

    /// <summary>
    /// The same with a primary key (the "live" path, which reads the new row back): the old image is still the one inside
    /// the writer's transaction. A row made public and hidden again before commit — never returned by any GET — reaches
    /// the anon stream as a DELETE carrying its key (here an e-mail address).
    /// </summary>
    [Fact]
    public async Task A_stream_sends_the_key_of_a_row_no_GET_ever_returned()
    {
        var (owner, p) = await app.AnonReadableAsync("pk stream", "create table members (email text primary key, public boolean not null default true)", "members");
        await TestApp.SqlAsync(owner, p.Id,
            $"create policy only_public on members as restrictive for select to {ProjectNaming.AnonRole(p.Id)} using (public)");

        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/members/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        var r = await TestApp.SqlAsync(owner, p.Id, """
            do $$ begin
              insert into members (email) values ('ceo-private@victim.example');
              update members set public = false where email = 'ceo-private@victim.example';
            end $$;
            -- the same with the capture fired at each statement, inside savepoints (subtransactions)
            do $$ begin
              set constraints all immediate;
              begin
                insert into members (email) values ('cfo-private@victim.example');
              exception when others then raise;
              end;
              begin
                update members set public = false where email = 'cfo-private@victim.example';
              exception when others then raise;
              end;
            end $$;
            insert into members (email) values ('marker@example.com');
            """);
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));

        var getBody = await (await SendAsync(app.BaseUrl, HttpMethod.Get, $"/db/{p.Id}/rest/members", null, p.AnonKey)).Content.ReadAsStringAsync();
        Assert.DoesNotContain("ceo-private", getBody);

        var seen = new List<string>();
        while (true)
        {
            var e = await s.NextAsync(TimeSpan.FromSeconds(20));
            seen.Add(e.Data.GetRawText());
            if (e.RecordText("email") == "marker@example.com") break;
        }
        var all = string.Join("\n", seen);
        Assert.False(all.Contains("ceo-private") || all.Contains("cfo-private"), "anon stream events:\n" + all);
    }

    /// <summary>
    /// The same for a transaction larger than one read of the log (1,000 changes live, 500 per table on a resume): its
    /// changes of one row came in different reads, and each read was netted on its own — so the secret every row was
    /// inserted with, redacted before commit, and a row made public and hidden again before commit (its key in the
    /// DELETE) reached anon subscribers. A resumed stream reads the transaction again from its start, in pages of 500.
    /// </summary>
    [Fact]
    public async Task A_transaction_larger_than_one_read_of_the_log_shows_only_what_committed()
    {
        var (owner, p) = await app.AnonReadableAsync("big tx stream", """
            create table notes (n int, secret text);
            create table members (email text primary key, public boolean not null default true);
            """, "notes");
        await AllowAnonAsync(owner, p, "members");
        await TestApp.SqlAsync(owner, p.Id,
            $"create policy only_public on members as restrictive for select to {ProjectNaming.AnonRole(p.Id)} using (public)");

        await using var notes = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}");
        await using var members = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/members/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, notes.Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, members.Response.StatusCode);
        const int rows = 1100;
        var r = await TestApp.SqlAsync(owner, p.Id, $$"""
            do $$ begin
              insert into members (email) values ('ceo-private@victim.example');
              insert into notes select g, 'SECRET ' || g from generate_series(1, {{rows}}) g;
              update notes set secret = 'redacted';
              update members set public = false where email = 'ceo-private@victim.example';
            end $$;
            insert into notes values (0, 'marker');
            insert into members (email) values ('marker@example.com');
            """);
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));

        var seenNotes = await UpToMarkerAsync(notes, "secret", "marker");
        var seenMembers = await UpToMarkerAsync(members, "email", "marker@example.com");
        var all = string.Join("\n", seenNotes.Concat(seenMembers).Select(e => e.Data.GetRawText()));
        Assert.False(all.Contains("SECRET") || all.Contains("ceo-private"), "anon stream events:\n" + all[..Math.Min(all.Length, 4000)]);
        // Nothing lost: each row once, as it committed.
        Assert.Equal(rows, seenNotes.Count(e => e.Data.GetProperty("type").GetString() == "INSERT" && e.RecordText("secret") == "redacted"));
        Assert.Equal(rows + 1, seenNotes.Count);

        // Resumed from the first of those events: the rest of the transaction again, read in pages of 500.
        await using var resumed = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}",
            lastEventId: seenNotes[0].Id);
        var replay = await UpToMarkerAsync(resumed, "secret", "marker");
        var replayed = string.Join("\n", replay.Select(e => e.Data.GetRawText()));
        Assert.DoesNotContain("SECRET", replayed);
        Assert.Equal(rows, replay.Count);
    }

    /// <summary>
    /// The shared login serves anon and signed-in users on one pooled session. A user's request sets request.user_id
    /// transaction-locally, an anonymous one sets nothing: so a session-level value that project code left (here an RPC
    /// function a signed-in user may call) is what the next anonymous caller's policies read — they see that user's rows.
    /// (PostgREST sets its request.* claims in every request, anon's included.)
    /// </summary>
    [Fact]
    public async Task An_anonymous_request_reads_the_claims_a_previous_users_request_left_in_the_shared_session()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "claims left");
        await TestApp.SqlAsync(owner, p.Id, "create table diary (id serial primary key, user_id uuid, entry text)");
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/diary/access", new
        {
            anon_select = false, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        })).EnsureSuccessStatusCode();
        var setup = await TestApp.SqlAsync(owner, p.Id, $$"""
            -- a supabase-style "own rows" policy for everybody: anonymous callers have no user id, so they see nothing
            grant select on diary to {{ProjectNaming.AnonRole(p.Id)}};
            create policy own_rows_for_all on diary for select to public
              using (user_id = nullif(current_setting('request.user_id', true), '')::uuid);
            -- a function that keeps something in the session (set_config(..., false))
            create function touch() returns text language plpgsql as $f$
            begin
              perform set_config('request.user_id', current_setting('request.user_id', true), false);
              return 'ok';
            end $f$;
            """);
        Assert.All(setup, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/touch/access", new { anon_execute = false, auth_execute = true }))
            .EnsureSuccessStatusCode();

        var signup = await (await SendAsync(app.BaseUrl, HttpMethod.Post, $"/db/{p.Id}/auth/signup", null, p.AnonKey,
            new { email = $"u{Guid.NewGuid():N}@example.com", password = "a user password" })).Content.ReadFromJsonAsync<JsonElement>();
        var token = signup.GetProperty("access_token").GetString()!;
        var write = await SendAsync(app.BaseUrl, HttpMethod.Post, $"/db/{p.Id}/rest/diary", token, p.AnonKey, new { entry = "my private diary" });
        Assert.True(write.IsSuccessStatusCode, await write.Content.ReadAsStringAsync());

        // Anonymous GET before: nothing.
        var before = await (await SendAsync(app.BaseUrl, HttpMethod.Get, $"/db/{p.Id}/rest/diary", null, p.AnonKey)).Content.ReadAsStringAsync();
        Assert.Equal("[]", before);

        var touched = await SendAsync(app.BaseUrl, HttpMethod.Post, $"/db/{p.Id}/rest/rpc/touch", token, p.AnonKey, new { });
        Assert.True(touched.IsSuccessStatusCode, await touched.Content.ReadAsStringAsync());

        var leaks = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var body = await (await SendAsync(app.BaseUrl, HttpMethod.Get, $"/db/{p.Id}/rest/diary", null, p.AnonKey)).Content.ReadAsStringAsync();
            if (body.Contains("my private diary")) leaks.Add(body);
        }
        Assert.True(leaks.Count == 0, "anonymous GET returned: " + string.Join(" | ", leaks));
    }

    /// <summary>
    /// A stream resumed (Last-Event-ID) after a change in the middle of a transaction nets that transaction whole again:
    /// the next row's change is the insert of its committed version, not an update from a version inside the transaction.
    /// </summary>
    [Fact]
    public async Task A_stream_resumed_in_the_middle_of_a_transaction_still_shows_only_what_committed()
    {
        // No primary key: the images themselves are sent.
        var (owner, p) = await app.AnonReadableAsync("resume mid tx", "create table notes (title text, secret text)", "notes");

        string? firstId;
        await using (var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}"))
        {
            var r = await TestApp.SqlAsync(owner, p.Id, """
                do $$ begin
                  insert into notes values ('a', 'draft a');
                  insert into notes values ('b', 'draft b');
                  update notes set secret = 'final a' where title = 'a';
                  update notes set secret = 'final b' where title = 'b';
                end $$;
                """);
            Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));
            var first = await s.NextAsync(TimeSpan.FromSeconds(20));
            Assert.Equal("INSERT", first.Data.GetProperty("type").GetString());
            Assert.Equal("final a", first.RecordText("secret"));
            firstId = first.Id;
        }
        // Resumed after a's change (b's came after it in the log, b's insert before it).
        await using var resumed = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}", lastEventId: firstId);
        Assert.Equal(HttpStatusCode.OK, resumed.Response.StatusCode);
        var next = await resumed.NextAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("INSERT", next.Data.GetProperty("type").GetString());
        Assert.Equal("final b", next.RecordText("secret"));
        Assert.DoesNotContain("draft", next.Data.GetRawText());
    }

    /// <summary>
    /// Code of the project's can lift the statement timeout for the whole pooled session (set_config(…, false)); every
    /// REST and RPC request sets it again for its own transaction, so no later request on that session runs unbounded.
    /// </summary>
    [Fact]
    public async Task A_statement_timeout_lifted_by_project_code_is_set_again_for_every_request()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "timeout lifted");
        var setup = await TestApp.SqlAsync(owner, p.Id, """
            create function loosen() returns text language sql volatile as $$ select set_config('statement_timeout', '0', false) $$;
            create function timeout_now() returns text language sql volatile as $$ select current_setting('statement_timeout') $$;
            """);
        Assert.All(setup, x => Assert.False(x.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object, x.ToString()));
        foreach (var fn in new[] { "loosen", "timeout_now" })
            (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/{fn}/access", new { anon_execute = true, auth_execute = true }))
                .EnsureSuccessStatusCode();

        for (var i = 0; i < 5; i++)
        {
            var loosened = await SendAsync(app.BaseUrl, HttpMethod.Post, $"/db/{p.Id}/rest/rpc/loosen", null, p.AnonKey, new { });
            Assert.True(loosened.IsSuccessStatusCode, await loosened.Content.ReadAsStringAsync());
            var now = await SendAsync(app.BaseUrl, HttpMethod.Post, $"/db/{p.Id}/rest/rpc/timeout_now", null, p.AnonKey, new { });
            var text = await now.Content.ReadAsStringAsync();
            Assert.True(now.IsSuccessStatusCode, text);
            Assert.NotEqual("\"0\"", text);
        }
    }
}
