// CSV import and export (DESIGN §7, issue 14) through WebApplicationFactory on a real PostgreSQL: all or nothing, every
// bad row reported with the file's line number, column and PostgreSQL's code, a dry run that imports nothing, export
// streamed with COPY and read back by import unchanged, and the table's own code run in the project's session.
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class CsvTransferTests(TestApp app)
{
    private const string Table = """
        create table books (id serial primary key, title text not null, pages integer, published date,
                            in_print boolean not null default true, note text);
        """;

    private async Task<(HttpStatusCode Status, JsonElement Body)> ImportAsync(HttpClient owner, string projectId, string table,
        string csv, bool dryRun = false, bool create = false)
    {
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes(csv));
        file.Headers.ContentType = new MediaTypeHeaderValue("text/csv");
        form.Add(file, "file", "books.csv");
        var query = string.Join("&", new[] { dryRun ? "dry_run=true" : null, create ? "create=true" : null }.OfType<string>());
        var res = await owner.PostAsync($"/api/projects/{projectId}/tables/{table}/import{(query.Length > 0 ? "?" + query : "")}", form);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode != HttpStatusCode.InternalServerError, string.Join("\n", app.Factory.Errors));
        return (res.StatusCode, text.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(text));
    }

    private static async Task<JsonElement> RowsAsync(HttpClient owner, string projectId, string sql) =>
        (await TestApp.SqlAsync(owner, projectId, sql))[0];

    [Fact]
    public async Task A_good_file_goes_in_whole_with_defaults_for_missing_columns_and_quoted_text_kept()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table);
        var csv = "\uFEFFtitle,pages,published,note\r\n" +
                  "Dune,412,1965-08-01,\"classic, desert\"\r\n" +
                  "\"Two\nlines\",,,\"\"\r\n" +     // a record over two lines; empty = NULL, quoted empty = ''
                  "Emma,474,1815-12-23,\r\n";

        var dry = await ImportAsync(owner, p.Id, "books", csv, dryRun: true);
        Assert.Equal(HttpStatusCode.OK, dry.Status);
        Assert.True(dry.Body.GetProperty("dryRun").GetBoolean());
        Assert.Equal(3, dry.Body.GetProperty("rows").GetInt64());
        Assert.Equal(0, dry.Body.GetProperty("imported").GetInt64());
        Assert.Equal("0", (await RowsAsync(owner, p.Id, "select count(*) from books")).GetProperty("rows")[0][0].ToString());

        var real = await ImportAsync(owner, p.Id, "books", csv);
        Assert.Equal(HttpStatusCode.OK, real.Status);
        Assert.Equal(3, real.Body.GetProperty("imported").GetInt64());
        Assert.Empty(real.Body.GetProperty("errors").EnumerateArray());
        var rows = (await RowsAsync(owner, p.Id,
            "select concat_ws('|', title, coalesce(pages::text, 'NULL'), coalesce(published::text, 'NULL'), in_print, coalesce(note, 'NULL')) from books order by id"))
            .GetProperty("rows").EnumerateArray().Select(r => r[0].GetString()).ToList();
        Assert.Equal(["Dune|412|1965-08-01|t|classic, desert", "Two\nlines|NULL|NULL|t|", "Emma|474|1815-12-23|t|NULL"], rows);
    }

    [Fact]
    public async Task Three_bad_rows_are_each_reported_by_line_and_column_and_nothing_is_imported()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table);
        var csv = string.Join("\n",
            "title,pages,published",           // line 1
            "Good,10,2020-01-01",              // 2
            "\"A title over",                  // 3 (a record over lines 3–4)
            "two lines\",eleven,2020-01-01",   // 4: pages is not an integer
            ",12,2020-01-01",                  // 5: title is NOT NULL
            "Fine,13,2020-01-01",              // 6
            "Late,14,2020-02-30",              // 7: no such date
            "Also fine,15,") + "\n";           // 8

        foreach (var dryRun in new[] { true, false })
        {
            var (status, body) = await ImportAsync(owner, p.Id, "books", csv, dryRun);
            Assert.Equal((HttpStatusCode)422, status);
            Assert.Equal(0, body.GetProperty("imported").GetInt64());
            Assert.Equal(6, body.GetProperty("rows").GetInt64()); // records: one spans two lines
            var errors = body.GetProperty("errors").EnumerateArray()
                .Select(e => $"{e.GetProperty("line").GetInt64()}:{e.GetProperty("column")}:{e.GetProperty("code").GetString()}").ToList();
            Assert.Equal(["3:pages:22P02", "5:title:23502", "7:published:22008"], errors);
            Assert.All(body.GetProperty("errors").EnumerateArray(), e => Assert.False(string.IsNullOrEmpty(e.GetProperty("message").GetString())));
        }
        Assert.Equal("0", (await RowsAsync(owner, p.Id, "select count(*) from books")).GetProperty("rows")[0][0].ToString());

        // Fixed, it goes in.
        var fixedCsv = csv.Replace("eleven", "11").Replace(",12,", "Named,12,").Replace("2020-02-30", "2020-02-28");
        var ok = await ImportAsync(owner, p.Id, "books", fixedCsv);
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        Assert.Equal(6, ok.Body.GetProperty("imported").GetInt64());
    }

    [Fact]
    public async Task Bad_files_and_strangers_are_refused_with_clear_answers()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table);

        var unknown = await ImportAsync(owner, p.Id, "books", "title,colour,title\nx,red,y\n");
        Assert.Equal((HttpStatusCode)422, unknown.Status);
        Assert.Equal(["1:colour:42703", "1:title:42701"], unknown.Body.GetProperty("errors").EnumerateArray()
            .Select(e => $"{e.GetProperty("line")}:{e.GetProperty("column")}:{e.GetProperty("code").GetString()}"));

        var empty = await ImportAsync(owner, p.Id, "books", "");
        Assert.Equal((HttpStatusCode)422, empty.Status);

        var ragged = await ImportAsync(owner, p.Id, "books", "title,pages\nA,1\nB\nC,3,extra\n\nD,4\n");
        Assert.Equal((HttpStatusCode)422, ragged.Status);
        Assert.Equal([3L, 4L, 5L], ragged.Body.GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("line").GetInt64()));

        Assert.Equal(HttpStatusCode.NotFound, (await ImportAsync(owner, p.Id, "no_such_table", "a\n1\n")).Status);
        var noFile = await owner.PostAsync($"/api/projects/{p.Id}/tables/books/import", new MultipartFormDataContent { { new StringContent("x"), "other" } });
        Assert.Equal(HttpStatusCode.BadRequest, noFile.StatusCode);
        var notForm = await owner.PostAsync($"/api/projects/{p.Id}/tables/books/import", new StringContent("title\nx\n"));
        Assert.Equal(HttpStatusCode.BadRequest, notForm.StatusCode);

        var stranger = await app.NewUserClientAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await ImportAsync(stranger, p.Id, "books", "title\nx\n")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync($"/api/projects/{p.Id}/tables/books/export")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Factory.CreateClient().GetAsync($"/api/projects/{p.Id}/tables/books/export")).StatusCode);
        Assert.Equal("0", (await RowsAsync(owner, p.Id, "select count(*) from books")).GetProperty("rows")[0][0].ToString());
    }

    [Fact]
    public async Task A_file_imported_as_a_new_table_is_created_with_its_rows_in_one_transaction_and_a_bad_row_leaves_no_table()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        async Task<string?> TableAsync() =>
            (await RowsAsync(owner, p.Id, "select to_regclass('stock')::text")).GetProperty("rows")[0][0].GetString();
        // Types are inferred from the first 1,000 rows: qty is an integer there; line 1,152 says "lots", line 1,101 repeats id 5.
        var lines = new List<string> { "id,name,qty" };
        for (var i = 1; i <= 1200; i++)
            lines.Add(i == 1100 ? "5,dup,1" : i == 1151 ? $"{i},bad,lots" : $"{i},item {i},{i % 7}");
        var bad = string.Join("\n", lines) + "\n";

        foreach (var dryRun in new[] { true, false })
        {
            var (status, body) = await ImportAsync(owner, p.Id, "stock", bad, dryRun, create: true);
            Assert.Equal((HttpStatusCode)422, status);
            Assert.Equal(0, body.GetProperty("imported").GetInt64());
            Assert.Equal(["1101:23505", "1152:22P02"], body.GetProperty("errors").EnumerateArray()
                .Select(e => $"{e.GetProperty("line").GetInt64()}:{e.GetProperty("code").GetString()}"));
            Assert.Null(await TableAsync()); // nothing: not the rows, not the table
        }

        var good = bad.Replace("5,dup,1", "1100,item 1100,1").Replace("bad,lots", "ok,3");
        var dry = await ImportAsync(owner, p.Id, "stock", good, dryRun: true, create: true);
        Assert.Equal(HttpStatusCode.OK, dry.Status);
        Assert.Equal((1200L, 0L), (dry.Body.GetProperty("rows").GetInt64(), dry.Body.GetProperty("imported").GetInt64()));
        Assert.Null(await TableAsync()); // a dry run creates, checks and rolls both back

        var real = await ImportAsync(owner, p.Id, "stock", good, create: true);
        Assert.Equal(HttpStatusCode.OK, real.Status);
        Assert.Equal(1200, real.Body.GetProperty("imported").GetInt64());
        var shape = (await RowsAsync(owner, p.Id, """
            select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' order by a.attnum),
                   (select relrowsecurity from pg_class where oid = 'stock'::regclass),
                   (select count(*) from stock), (select pg_get_constraintdef(oid) from pg_constraint where conrelid = 'stock'::regclass and contype = 'p')
            from pg_attribute a where a.attrelid = 'stock'::regclass and a.attnum > 0 and not a.attisdropped
            """)).GetProperty("rows")[0];
        Assert.Equal("id integer, name text, qty integer", shape[0].GetString());
        Assert.True(shape[1].GetBoolean()); // the secure access defaults, once committed
        Assert.Equal("1200", shape[2].ToString());
        Assert.Equal("PRIMARY KEY (id)", shape[3].GetString());

        // Again: the table exists, so create=true is refused; without it the file goes into the table (ids now clash).
        var again = await ImportAsync(owner, p.Id, "stock", good, create: true);
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
        Assert.Contains("exists already", again.Body.GetProperty("detail").GetString());
        // A file without an id column gets an added id SERIAL; a header PostgreSQL refuses says so.
        Assert.Equal(HttpStatusCode.OK, (await ImportAsync(owner, p.Id, "tags", "label\nred\nblue\n", create: true)).Status);
        Assert.Equal("[[1,\"red\"],[2,\"blue\"]]",
            (await RowsAsync(owner, p.Id, "select id, label from tags order by id")).GetProperty("rows").ToString().Replace(" ", ""));
        var twice = await ImportAsync(owner, p.Id, "twice", "a,a\n1,2\n", create: true);
        Assert.Equal((HttpStatusCode)422, twice.Status);
        Assert.Equal("42701", twice.Body.GetProperty("errors")[0].GetProperty("code").GetString());
    }

    [Fact]
    public async Task Export_streams_every_row_and_import_reads_it_back_unchanged()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table + """
            insert into books (title, pages, published, in_print, note)
            select 'Book ' || g, g, date '2000-01-01' + g, g % 2 = 0, case when g % 3 = 0 then null when g % 3 = 1 then '' else e'line\nbreak, "quoted"' end
            from generate_series(1, 2500) g;
            create table books_copy (like books including defaults);
            """);

        var res = await owner.GetAsync($"/api/projects/{p.Id}/tables/books/export");
        Assert.Equal(HttpStatusCode.OK, res.StatusCode);
        Assert.Equal("text/csv", res.Content.Headers.ContentType!.MediaType);
        Assert.Contains("books.csv", res.Content.Headers.ContentDisposition!.ToString());
        var csv = await res.Content.ReadAsStringAsync();
        Assert.StartsWith("id,title,pages,published,in_print,note\n1,Book 1,1,2000-01-02,f,\"\"\n", csv);

        var back = await ImportAsync(owner, p.Id, "books_copy", csv);
        Assert.Equal(HttpStatusCode.OK, back.Status);
        Assert.Equal(2500, back.Body.GetProperty("imported").GetInt64());
        var diff = await RowsAsync(owner, p.Id,
            "select count(*) from ((table books except table books_copy) union all (table books_copy except table books)) d");
        Assert.Equal("0", diff.GetProperty("rows")[0][0].ToString());
        Assert.Equal("1", (await RowsAsync(owner, p.Id, "select count(*) from books_copy where id = 3 and note is null")).GetProperty("rows")[0][0].ToString());
    }

    [Fact]
    public async Task A_filtered_export_streams_every_matching_row_past_the_rest_row_cap_in_either_filter_form()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table + """
            insert into books (title, pages, published, in_print, note)
            select 'Book ' || g, g, date '2000-01-01' + g, g % 2 = 0, case when g = 7 then e'a, "quoted"\nnote' end
            from generate_series(1, 3000) g;
            """);
        async Task<string[]> ExportAsync(string query)
        {
            var res = await owner.GetAsync($"/api/projects/{p.Id}/tables/books/export?{query}");
            var text = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.OK, $"{query}: {(int)res.StatusCode} {text}");
            Assert.Equal("text/csv", res.Content.Headers.ContentType!.MediaType);
            return text.TrimEnd('\n').Split('\n');
        }

        // The Data tab's form (the page URL's): 1,500 rows of 3,000 — past REST's cap of 1,000 rows a read — by primary key.
        var even = await ExportAsync("where=in_print.is.true");
        Assert.Equal(1501, even.Length);
        Assert.Equal("id,title,pages,published,in_print,note", even[0]);
        Assert.StartsWith("2,Book 2,2,", even[1]);
        Assert.StartsWith("3000,", even[^1]);
        // Any of several conditions, in the order shown (descending); "contains" takes its text as it is (a * is no wildcard).
        Assert.Equal(["id,title", "3000,Book 3000", "2999,Book 2999", "10,Book 10"],
            await ExportAsync("select=id,title&where=pages.gt.2998&where=title.eq.Book%2010&any=1&order=id.desc"));
        Assert.Single(await ExportAsync("where=title.contains.Book*1")); // the header only
        // PostgREST's form: filters, or=, select=, order= and limit=; a value's quotes, commas and newline arrive as they are.
        Assert.Equal(["title,pages", "Book 9,9", "Book 8,8"], await ExportAsync("pages=gte.8&or=(pages.eq.8,pages.eq.9)&select=title,pages&order=pages.desc"));
        Assert.Equal(["id,note", "7,\"a, \"\"quoted\"\"", "note\""],
            await ExportAsync("select=id,note&note=eq." + Uri.EscapeDataString("a, \"quoted\"\nnote")));
        Assert.Equal(["id", "1", "2", "3"], await ExportAsync("select=id&id=in.(1,2,3,4)&limit=3"));
        // Both forms together are ANDed.
        Assert.Equal(["id", "4"], await ExportAsync("select=id&id=lte.5&where=in_print.is.true&where=id.gt.2"));
    }

    [Fact]
    public async Task A_bad_export_filter_is_a_400_that_says_why_and_writes_no_csv()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table + "insert into books (title, pages) select 'b' || g, g from generate_series(1, 100000) g;");
        // Each: the query, PostgreSQL's code (or none: the parser's refusal) and what the message says. A value of the wrong
        // type is found at the first row — COPY has sent its header by then, held back.
        foreach (var (query, code, says) in new (string, string?, string)[]
                 {
                     ("pages=gt.many", "22P02", "invalid input syntax for type integer: \"many\""),
                     ("where=pages.gt.many", "22P02", "\"many\""),
                     ("colour=eq.red", "42703", "colour"),
                     ("id=eq.1&select=nope", "42703", "nope"),
                     ("pages=around.3", null, "Unknown operator \"around\""),
                     ("where=pages-is-big", null, "column.operator.value"),
                     ("select=title,authors(name)", null, "embedded"),
                 })
        {
            var res = await owner.GetAsync($"/api/projects/{p.Id}/tables/books/export?{query}");
            var problem = JsonSerializer.Deserialize<JsonElement>(await res.Content.ReadAsStringAsync());
            Assert.True(res.StatusCode == HttpStatusCode.BadRequest, $"{query}: {(int)res.StatusCode} {problem}");
            Assert.NotEqual("text/csv", res.Content.Headers.ContentType?.MediaType);
            Assert.Null(res.Content.Headers.ContentDisposition);
            if (code is not null) Assert.Equal(code, problem.GetProperty("code").GetString());
            Assert.Contains(says, problem.GetProperty("detail").GetString());
        }
        Assert.Equal(HttpStatusCode.NotFound, (await owner.GetAsync($"/api/projects/{p.Id}/tables/no_such/export?id=eq.1")).StatusCode);
    }

    [Fact]
    public async Task The_tables_own_code_runs_in_the_projects_session_not_the_platforms()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, Table + """
            create table seen (who text, acting text);
            create function record_session() returns trigger language plpgsql as $$
            begin insert into seen values (session_user, current_user); return new; end $$;
            create trigger spy before insert on books for each row execute function record_session();
            """);
        Assert.Equal(HttpStatusCode.OK, (await ImportAsync(owner, p.Id, "books", "title\nA\n")).Status);
        Assert.Equal((HttpStatusCode)422, (await ImportAsync(owner, p.Id, "books", "title,pages\nB,x\n")).Status); // (its rows are rolled back)
        (await owner.GetAsync($"/api/projects/{p.Id}/tables/books/export")).EnsureSuccessStatusCode();
        var seen = (await RowsAsync(owner, p.Id, "select distinct who, acting from seen")).GetProperty("rows");
        Assert.Equal($"[[\"proj_{p.Id}_owner\",\"proj_{p.Id}_owner\"]]", seen.ToString().Replace(" ", ""));

        // A forced policy whose function refuses any other session: the filtered export (COPY of the planner's SELECT)
        // runs it, and it only succeeds in the project owner's session.
        var r = await TestApp.SqlAsync(owner, p.Id, $$"""
            create function only_owner() returns boolean language plpgsql as $$
            begin
              if session_user <> 'proj_{{p.Id}}_owner' then raise exception 'ran in %', session_user; end if;
              return true;
            end $$;
            alter table books enable row level security; alter table books force row level security;
            create policy guard on books using (only_owner());
            """);
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e), e.ToString()));
        var filtered = await owner.GetAsync($"/api/projects/{p.Id}/tables/books/export?title=eq.A&select=title");
        Assert.True(filtered.IsSuccessStatusCode, await filtered.Content.ReadAsStringAsync());
        Assert.Equal("title\nA", (await filtered.Content.ReadAsStringAsync()).Trim());
    }
}
